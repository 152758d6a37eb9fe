"""/api/v1/workers/: worker processes, newest first, with the queues the caller may see."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Q
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from dashboard.api.base import RelayViewSet
from dashboard.api.pagination import KeysetPagination
from queues.api.serializers import WorkerSerializer
from queues.models import Worker

LIVE = "live"  # running or stopping


@extend_schema_view(
    list=extend_schema(summary="List workers", parameters=[
        OpenApiParameter("state", enum=[LIVE, *Worker.State.values],
                         description="`live`: running or stopping."),
    ]),
    retrieve=extend_schema(summary="One worker"),
)
class WorkerViewSet(RelayViewSet):
    serializer_class = WorkerSerializer
    pagination_class = KeysetPagination

    def get_queryset(self) -> Any:
        qs = Worker.objects.order_by("-id")
        everything, queues, _ = self.access.visible_scope
        if not everything:
            # As on the workers page: a worker serving none of the caller's queues is hidden.
            serves = Q(pk__in=[])
            for queue in sorted(queues):
                serves |= Q(queues__icontains=json.dumps(queue))
            qs = qs.filter(serves)
        return qs

    def list(self, request: Any) -> Response:
        qs = self.get_queryset()
        state = request.query_params.get("state")
        if state == LIVE:
            qs = qs.filter(state__in=(Worker.State.RUNNING, Worker.State.STOPPING))
        elif state in Worker.State.values:
            qs = qs.filter(state=state)
        elif state:
            raise ValidationError({"state": [f"Unknown state {state!r} (one of {LIVE}, "
                                             f"{', '.join(Worker.State.values)})."]})
        page = self._narrowed(self.paginate_queryset(qs))
        return self.get_paginated_response(self.render(WorkerSerializer, page, many=True))

    def retrieve(self, request: Any, pk: str) -> Response:
        return Response(self.render(WorkerSerializer, self._narrowed([self.get_object()])[0]))

    def _narrowed(self, workers: list[Worker]) -> list[Worker]:
        """Each worker's queues, less those the caller may not see."""
        for worker in workers:
            worker.queues = self.access.queues(list(worker.queues or []))
        return workers
