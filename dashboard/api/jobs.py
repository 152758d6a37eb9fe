"""/api/v1/jobs/: enqueue, the filtered list, one job with its attempts, cancel and retry.

The list takes the dashboard's job filter (dashboard.filters.JobFilter), so `?state=failed&
queue=reports&since=24h` means exactly what it means on the jobs page.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from dashboard import actions
from dashboard.api.base import RelayViewSet
from dashboard.api.errors import Conflict
from dashboard.api.pagination import KeysetPagination
from dashboard.filters import SORTS, JobFilter
from queues.api.serializers import (
    EnqueuedJobSerializer,
    EnqueueSerializer,
    JobDetailSerializer,
    JobSerializer,
    ReasonSerializer,
)
from queues.models import Job, JobState

FILTER_PARAMETERS = [
    OpenApiParameter("state", many=True, enum=JobState.values,
                     description="Jobs in any of these states."),
    OpenApiParameter("queue", many=True, description="Jobs in any of these queues."),
    OpenApiParameter("task", many=True, description="Jobs of any of these tasks."),
    OpenApiParameter("worker", many=True, description="Run by this worker (name or id)."),
    OpenApiParameter("tag", many=True, description="Carrying every one of these tags."),
    OpenApiParameter("arg", many=True,
                     description="An argument's value: `args.customer_id=42`, `args.0=x`, "
                                 "`kwargs.order.id=7` (secret arguments cannot be matched)."),
    OpenApiParameter("since", description="Created at or after: `24h`, `7d`, "
                                          "`2026-11-24T10:00` or `2026-11-24`."),
    OpenApiParameter("until", description="Created at or before (same forms as since)."),
    OpenApiParameter("q", description="Text in the arguments or the last error, a dedup "
                                      "key, or `#<id>`."),
    OpenApiParameter("sort", enum=list(SORTS),
                     description="Default `-id` (newest first); the others need a state "
                                 "filter of scheduled, running or failed jobs."),
]


@extend_schema_view(
    list=extend_schema(summary="List jobs", parameters=FILTER_PARAMETERS),
    retrieve=extend_schema(summary="A job with its newest attempts",
                           responses=JobDetailSerializer),
)
class JobViewSet(RelayViewSet):
    serializer_class = JobSerializer
    pagination_class = KeysetPagination

    def get_queryset(self) -> Any:
        return self.access.jobs(Job.objects.select_related("worker"))

    def list(self, request: Any) -> Response:
        job_filter = JobFilter.from_params(request.query_params)
        qs = (job_filter.apply(self.get_queryset())
              .defer("result", "progress", "backoff", "worker__tasks"))
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(self.render(JobSerializer, page, many=True))

    def retrieve(self, request: Any, pk: str) -> Response:
        return Response(self.render(JobDetailSerializer, self.get_object()))

    @extend_schema(
        summary="Enqueue a job",
        request=EnqueueSerializer,
        responses={201: EnqueuedJobSerializer, 200: EnqueuedJobSerializer},
        description="201 with the new job; 200 with the existing one when an active job "
                    "holds the same dedup_key. Needs the trigger permission on the queue.",
    )
    def create(self, request: Any) -> Response:
        serializer = EnqueueSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        job = actions.enqueue_task(self.actor(), data["task"], data.get("kwargs") or {},
                                   args=data.get("args") or [], queue=data.get("queue"),
                                   options=serializer.options(),
                                   reason=data.get("reason", "").strip())
        deduplicated = job.deduplicated
        visible = self.get_queryset().filter(pk=job.pk).first()
        if visible is None and deduplicated:  # don't show a job the caller may not see
            raise Conflict("An active job you may not see holds this dedup_key")
        job = visible or job
        job.deduplicated = deduplicated
        return Response(self.render(EnqueuedJobSerializer, job),
                        status=status.HTTP_200_OK if deduplicated else status.HTTP_201_CREATED)

    @extend_schema(summary="Cancel a job", request=ReasonSerializer,
                   responses={200: JobDetailSerializer},
                   description="A waiting job is cancelled at once; a running one is stopped "
                               "by its worker within a heartbeat (cancel_requested_at is set).")
    @action(detail=True, methods=["post"])
    def cancel(self, request: Any, pk: str) -> Response:
        self.require_any("cancel")
        job = self.get_object()
        job = actions.cancel_job(self.actor(), job.pk, self.reason())
        return Response(self.render(JobDetailSerializer, job))

    @extend_schema(summary="Retry a job", request=ReasonSerializer,
                   responses={200: JobDetailSerializer},
                   description="A failed job runs now; a dead-lettered or cancelled one goes "
                               "back to its queue with a fresh set of attempts.")
    @action(detail=True, methods=["post"])
    def retry(self, request: Any, pk: str) -> Response:
        self.require_any("retry")
        job = self.get_object()
        job = actions.retry_job(self.actor(), job.pk, self.reason())
        return Response(self.render(JobDetailSerializer, job))

