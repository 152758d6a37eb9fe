"""/api/v1/executions/: every attempt of the jobs the caller may see, newest first."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from dashboard.api.base import MAX_ID, RelayViewSet
from dashboard.api.pagination import KeysetPagination
from queues.api.serializers import ExecutionSerializer
from queues.models import Execution, Job, Outcome


@extend_schema_view(
    list=extend_schema(summary="List executions (attempts)", parameters=[
        OpenApiParameter("job", int, description="Attempts of this job."),
        OpenApiParameter("outcome", enum=[*Outcome.values, "running"],
                         description="How the attempt ended (`running`: not yet)."),
        OpenApiParameter("worker", int, description="Attempts run by this worker id."),
    ]),
    retrieve=extend_schema(summary="One execution, with its traceback"),
)
class ExecutionViewSet(RelayViewSet):
    serializer_class = ExecutionSerializer
    pagination_class = KeysetPagination

    def get_queryset(self) -> Any:
        qs = Execution.objects.select_related("worker")
        if not self.access.sees_everything:
            qs = qs.filter(job__in=self.access.jobs(Job.objects.all()).values("id"))
        return qs.order_by("-id")

    def list(self, request: Any) -> Response:
        qs = self.get_queryset()
        params = request.query_params
        for name in ("job", "worker"):
            raw = params.get(name)
            if raw:
                if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_ID:
                    raise ValidationError({name: [f"{raw!r} is not an id."]})
                qs = qs.filter(**{f"{name}_id": int(raw)})
        outcome = params.get("outcome")
        if outcome:
            if outcome == "running":
                qs = qs.filter(outcome__isnull=True)
            elif outcome in Outcome.values:
                qs = qs.filter(outcome=outcome)
            else:
                raise ValidationError({"outcome": [f"Unknown outcome {outcome!r} (one of "
                                                   f"{', '.join(Outcome.values)}, running)."]})
        page = self.paginate_queryset(qs.defer("traceback", "worker__tasks"))
        return self.get_paginated_response(self.render(ExecutionSerializer, page, many=True))

    def retrieve(self, request: Any, pk: str) -> Response:
        return Response(self.render(ExecutionSerializer, self.get_object()))
