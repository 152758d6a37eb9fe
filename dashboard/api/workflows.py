"""/api/v1/workflows/: workflow definitions (newest version of each) and their versions.

Definitions change only through `manage.py relay_workflows apply` from files in Git; the API
reads them. Runs are started at /api/v1/runs/.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Max, Q
from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.decorators import action
from rest_framework.response import Response

from dashboard.api.base import RelayViewSet
from scheduler.api.serializers import WorkflowSerializer, WorkflowVersionSerializer
from scheduler.definitions.schema import NAME
from scheduler.models import WorkflowDefinition

_SUMMARY = ("id", "name", "version", "description", "created_at")


@extend_schema_view(
    list=extend_schema(summary="List workflows"),
    retrieve=extend_schema(summary="One workflow"),
)
class WorkflowViewSet(RelayViewSet):
    serializer_class = WorkflowSerializer
    lookup_field = "name"
    lookup_value_regex = NAME.strip("^$")
    pagination_class = None  # a handful of workflows, each listed once

    def get_queryset(self) -> Any:
        return self.access.definitions(WorkflowDefinition.objects.all())

    def _summaries(self, qs: Any) -> list[dict[str, Any]]:
        rows = list(qs.values("name").annotate(latest=Max("version"), versions=Count("id"))
                    .order_by("name"))
        pairs = Q(pk__in=[])
        for row in rows:
            pairs |= Q(name=row["name"], version=row["latest"])
        latest = {d.name: d for d in qs.filter(pairs).only(*_SUMMARY)}
        return [{"name": row["name"], "latest_version": row["latest"],
                 "versions": row["versions"], "description": latest[row["name"]].description,
                 "updated_at": latest[row["name"]].created_at} for row in rows]

    def list(self, request: Any) -> Response:
        return Response(self.render(WorkflowSerializer, self._summaries(self.get_queryset()),
                                    many=True))

    def retrieve(self, request: Any, name: str) -> Response:
        found = self._summaries(self.get_queryset().filter(name=name))
        if not found:
            raise Http404(f"No workflow named {name!r}")
        return Response(self.render(WorkflowSerializer, found[0]))

    @extend_schema(summary="Every version of a workflow, newest first",
                   responses={200: WorkflowVersionSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def versions(self, request: Any, name: str) -> Response:
        versions = list(self.get_queryset().filter(name=name).order_by("-version"))
        if not versions:
            raise Http404(f"No workflow named {name!r}")
        return Response(self.render(WorkflowVersionSerializer, versions, many=True))
