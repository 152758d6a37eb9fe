"""/api/v1/dead-letters/: jobs that need an operator (open), or how they were resolved;
retry puts the job back in its queue, discard gives it up. Both resolve the letter."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from dashboard import actions
from dashboard.api.base import RelayViewSet
from dashboard.api.errors import Conflict
from dashboard.api.jobs import FILTER_PARAMETERS
from dashboard.api.pagination import KeysetPagination
from dashboard.filters import JobFilter
from queues.api.serializers import DeadLetterSerializer, ReasonSerializer
from queues.models import DeadLetter, Job, JobState

SHOW = ("open", "resolved", "all")
# The job filter applies to each letter's job; `sort` is the letters' own (newest first).
LETTER_FILTERS = [p for p in FILTER_PARAMETERS if p.name != "sort"]


@extend_schema_view(
    list=extend_schema(summary="List dead letters", parameters=[
        OpenApiParameter("show", enum=list(SHOW),
                         description="open (default): waiting for an operator."),
        *LETTER_FILTERS,
    ]),
    retrieve=extend_schema(summary="One dead letter"),
)
class DeadLetterViewSet(RelayViewSet):
    serializer_class = DeadLetterSerializer
    pagination_class = KeysetPagination

    def get_queryset(self) -> Any:
        qs = DeadLetter.objects.select_related("job", "resolved_by").defer(
            "job__result", "job__progress", "job__backoff", "job__args", "job__kwargs")
        if not self.access.sees_everything:
            qs = qs.filter(job_id__in=self.access.jobs(Job.objects.all()).order_by()
                           .values("id"))
        return qs.order_by("-id")

    def list(self, request: Any) -> Response:
        show = request.query_params.get("show") or "open"
        if show not in SHOW:
            raise ValidationError({"show": [f"One of {', '.join(SHOW)}."]})
        if "sort" in request.query_params:
            raise ValidationError({"sort": ["Dead letters are listed newest first."]})
        job_filter = JobFilter.from_params(request.query_params)
        qs = self.get_queryset()
        if show == "open":
            qs = qs.filter(resolved_at__isnull=True, job__state=JobState.DEAD_LETTER)
        elif show == "resolved":
            qs = qs.filter(resolved_at__isnull=False)
        if not job_filter.is_empty:
            qs = qs.filter(job_id__in=job_filter.apply(Job.objects.all()).order_by()
                           .values("id"))
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(self.render(DeadLetterSerializer, page, many=True))

    def retrieve(self, request: Any, pk: str) -> Response:
        return Response(self.render(DeadLetterSerializer, self.get_object()))

    def _open_letter(self) -> DeadLetter:
        letter = self.get_object()
        if letter.resolved_at is not None or letter.job.state != JobState.DEAD_LETTER:
            raise Conflict(f"Dead letter #{letter.pk} is already resolved "
                           f"({letter.resolution or 'its job left the dead letters'})")
        return letter

    def _done(self, letter: DeadLetter) -> Response:
        letter = self.get_queryset().get(pk=letter.pk)
        return Response(self.render(DeadLetterSerializer, letter))

    @extend_schema(summary="Retry a dead letter's job", request=ReasonSerializer,
                   responses={200: DeadLetterSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request: Any, pk: str) -> Response:
        self.require_any("retry")
        letter = self._open_letter()
        actions.retry_job(self.actor(), letter.job_id, self.reason())
        return self._done(letter)

    @extend_schema(summary="Discard a dead letter (give its job up)", request=ReasonSerializer,
                   responses={200: DeadLetterSerializer})
    @action(detail=True, methods=["post"])
    def discard(self, request: Any, pk: str) -> Response:
        self.require_any("discard")
        letter = self._open_letter()
        actions.discard_job(self.actor(), letter.job_id, self.reason())
        return self._done(letter)
