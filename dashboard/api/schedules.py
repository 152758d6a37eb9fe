"""/api/v1/schedules/: schedules with their timing and next fire time; pause, resume and
trigger now (the same permissions as the schedules page: pause for pause/resume, trigger for
trigger, on the schedule's workflow or its task's queue)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from dashboard import actions
from dashboard.api.base import RelayViewSet
from queues.api.serializers import ReasonSerializer
from scheduler.api.serializers import ScheduleSerializer, TriggeredSerializer
from scheduler.models import Schedule


@extend_schema_view(
    list=extend_schema(summary="List schedules"),
    retrieve=extend_schema(summary="One schedule"),
)
class ScheduleViewSet(RelayViewSet):
    serializer_class = ScheduleSerializer
    pagination_class = None  # schedules are few; listed by name

    def get_queryset(self) -> Any:
        return self.access.schedules(Schedule.objects.order_by("name"))

    def list(self, request: Any) -> Response:
        return Response(self.render(ScheduleSerializer, self.get_queryset(), many=True))

    def retrieve(self, request: Any, pk: str) -> Response:
        return Response(self.render(ScheduleSerializer, self.get_object()))

    @extend_schema(summary="Pause a schedule", request=ReasonSerializer,
                   responses={200: ScheduleSerializer})
    @action(detail=True, methods=["post"])
    def pause(self, request: Any, pk: str) -> Response:
        self.require_any("pause")
        schedule = actions.pause_schedule(self.actor(), self.get_object().pk, self.reason())
        return Response(self.render(ScheduleSerializer, schedule))

    @extend_schema(summary="Resume a schedule", request=ReasonSerializer,
                   responses={200: ScheduleSerializer},
                   description="It fires again from its next due time; missed times are "
                               "not run.")
    @action(detail=True, methods=["post"])
    def resume(self, request: Any, pk: str) -> Response:
        self.require_any("pause")
        schedule = actions.resume_schedule(self.actor(), self.get_object().pk, self.reason())
        return Response(self.render(ScheduleSerializer, schedule))

    @extend_schema(summary="Trigger a schedule now", request=ReasonSerializer,
                   responses={201: TriggeredSerializer},
                   description="Starts its workflow run or enqueues its task now, outside "
                               "its timing (not recorded as a due time).")
    @action(detail=True, methods=["post"])
    def trigger(self, request: Any, pk: str) -> Response:
        self.require_any("trigger")
        schedule = self.get_object()
        started = actions.trigger_schedule(self.actor(), schedule.pk, self.reason())
        is_run = schedule.target_kind == Schedule.Target.WORKFLOW
        body = {"target_kind": schedule.target_kind, "run": started.pk if is_run else None,
                "job": None if is_run else started.pk}
        return Response(TriggeredSerializer(body).data, status=status.HTTP_201_CREATED)
