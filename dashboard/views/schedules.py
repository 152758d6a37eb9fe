"""Schedules: timing, next fire times, the last firing, and pause / resume / trigger now."""

from __future__ import annotations

from datetime import datetime
from itertools import islice

from django.db.models import OuterRef, Subquery
from django.http import HttpRequest, HttpResponse

from dashboard import actions
from dashboard.access import access_for
from dashboard.views.base import action, done, page, reason, render_page
from scheduler import firing
from scheduler.models import Firing, Schedule

NEXT_TIMES = 3


def upcoming(schedule: Schedule, now: datetime, count: int = NEXT_TIMES) -> list[datetime]:
    """The next `count` due times after `now` (before jitter), in UTC; [] for a broken
    timing."""
    try:
        return list(islice(firing.due_times(schedule, now), count))
    except Exception:  # noqa: BLE001 -- a bad cron or zone must not take the page down
        return []


@page
def schedule_list(request: HttpRequest) -> HttpResponse:
    access = access_for(request)
    # The latest firing per schedule through the (schedule, due_at) unique index.
    latest = (Firing.objects.filter(schedule=OuterRef("pk")).order_by("-due_at")
              .values("id")[:1])
    schedules = list(access.schedules(Schedule.objects.all())
                     .annotate(last_firing_id=Subquery(latest)).order_by("name"))
    firings = Firing.objects.in_bulk([s.last_firing_id for s in schedules if s.last_firing_id])
    now = firing.now()  # the scheduler's clock (the database's), once for the page
    for schedule in schedules:
        schedule.last_firing = firings.get(schedule.last_firing_id)
        schedule.upcoming = upcoming(schedule, now)
        schedule.overdue = bool(schedule.enabled and schedule.next_fire_at
                                and schedule.next_fire_at < now)
    return render_page(request, "dashboard/schedules/list.html", {"schedules": schedules})


@action
def pause(request: HttpRequest, actor: actions.Actor, schedule_id: int) -> HttpResponse:
    schedule = actions.pause_schedule(actor, schedule_id, reason(request))
    return done(request, f"Schedule {schedule.name} paused: it fires nothing until resumed.",
                "dashboard:schedules")


@action
def resume(request: HttpRequest, actor: actions.Actor, schedule_id: int) -> HttpResponse:
    schedule = actions.resume_schedule(actor, schedule_id, reason(request))
    return done(request, f"Schedule {schedule.name} resumed; missed times are not fired.",
                "dashboard:schedules")


@action
def trigger(request: HttpRequest, actor: actions.Actor, schedule_id: int) -> HttpResponse:
    started = actions.trigger_schedule(actor, schedule_id, reason(request))
    what = (f"run #{started.pk}" if started._meta.model_name == "workflowrun"
            else f"job #{started.pk}")
    return done(request, f"Schedule triggered now: started {what}.", "dashboard:schedules")
