"""/api/v1/runs/: workflow runs -- start one with input, list, one with its steps, cancel, rerun.

List filters as on the runs page: workflow, state, triggered_by (contains), since.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from dashboard import actions
from dashboard.api.base import RelayViewSet
from dashboard.api.pagination import KeysetPagination
from dashboard.filters import parse_time
from queues.api.serializers import ReasonSerializer
from scheduler.api.serializers import RunDetailSerializer, RunSerializer, StartRunSerializer
from scheduler.models import RunState, WorkflowDefinition, WorkflowRun


@extend_schema_view(
    list=extend_schema(summary="List workflow runs", parameters=[
        OpenApiParameter("workflow", description="Runs of this workflow (any version)."),
        OpenApiParameter("state", enum=RunState.values),
        OpenApiParameter("triggered_by", description="Who or what started it (contains)."),
        OpenApiParameter("since", description="Created at or after: `24h`, `7d`, "
                                              "`2026-11-24T10:00`."),
    ]),
    retrieve=extend_schema(summary="A run with its steps", responses=RunDetailSerializer),
)
class RunViewSet(RelayViewSet):
    serializer_class = RunSerializer
    pagination_class = KeysetPagination

    def get_queryset(self) -> Any:
        return self.access.runs(WorkflowRun.objects.select_related("definition", "schedule"))

    def list(self, request: Any) -> Response:
        params = request.query_params
        qs = self.get_queryset().defer("input", "definition__spec",
                                       "definition__source_text", "schedule__input")
        workflow = params.get("workflow", "").strip()
        if workflow:
            # Definition ids first: the (definition, -id) index then serves the scan.
            qs = qs.filter(definition_id__in=list(
                WorkflowDefinition.objects.filter(name=workflow).values_list("id", flat=True)))
        state = params.get("state", "").strip()
        if state:
            if state not in RunState.values:
                raise ValidationError({"state": [f"Unknown state {state!r} (one of "
                                                 f"{', '.join(RunState.values)})."]})
            qs = qs.filter(state=state)
        triggered_by = params.get("triggered_by", "").strip()[:200]
        if triggered_by:
            qs = qs.filter(triggered_by__icontains=triggered_by)
        since = params.get("since", "").strip()
        if since:
            qs = qs.filter(created_at__gte=parse_time("since", since))
        page = self.paginate_queryset(qs.order_by("-id"))
        return self.get_paginated_response(self.render(RunSerializer, page, many=True))

    def retrieve(self, request: Any, pk: str) -> Response:
        return Response(self.render(RunDetailSerializer, self.get_object()))

    @extend_schema(summary="Start a workflow run", request=StartRunSerializer,
                   responses={201: RunDetailSerializer},
                   description="Runs the newest version of the workflow with this input. "
                               "Needs the trigger permission on the workflow.")
    def create(self, request: Any) -> Response:
        serializer = StartRunSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        run = actions.start_workflow(self.actor(), data["workflow"], data.get("input") or {},
                                     data.get("reason", "").strip())
        return Response(self.render(RunDetailSerializer, self.get_queryset().get(pk=run.pk)),
                        status=status.HTTP_201_CREATED)

    @extend_schema(summary="Cancel a run", request=ReasonSerializer,
                   responses={200: RunDetailSerializer},
                   description="Steps not started are cancelled; running steps' jobs are "
                               "cancelled (their workers stop them).")
    @action(detail=True, methods=["post"])
    def cancel(self, request: Any, pk: str) -> Response:
        self.require_any("cancel")
        run = actions.cancel_run(self.actor(), self.get_object().pk, self.reason())
        return Response(self.render(RunDetailSerializer, self.get_queryset().get(pk=run.pk)))

    @extend_schema(summary="Rerun a failed or cancelled run", request=ReasonSerializer,
                   responses={200: RunDetailSerializer},
                   description="Its failed and cancelled steps and everything after them run "
                               "again on the run's own version; successful steps keep their "
                               "outputs.")
    @action(detail=True, methods=["post"])
    def rerun(self, request: Any, pk: str) -> Response:
        self.require_any("rerun")
        run = actions.rerun_run(self.actor(), self.get_object().pk, self.reason())
        return Response(self.render(RunDetailSerializer, self.get_queryset().get(pk=run.pk)))
