"""Queues: depth per state, oldest waiting job, who serves them, pause and resume."""

from __future__ import annotations

from django.db.models import Count, Min, Q
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from dashboard import actions
from dashboard.access import access_for
from dashboard.views.base import action, done, page, reason, render_page
from queues.models import Job, JobState, Worker
from queues.operations import paused_queues


@page
def queue_list(request: HttpRequest) -> HttpResponse:
    access = access_for(request)
    now = timezone.now()
    # Only active jobs are counted (the partial claim index and the state index serve it);
    # finished jobs are counted on the overview, over a bounded time window.
    rows = (Job.objects.active().values("queue")
            .annotate(scheduled=Count("id", filter=Q(state=JobState.SCHEDULED)),
                      running=Count("id", filter=Q(state=JobState.RUNNING)),
                      failed=Count("id", filter=Q(state=JobState.FAILED)),
                      oldest=Min("run_at", filter=~Q(state=JobState.RUNNING) & Q(run_at__lte=now)))
            .order_by("queue"))
    stats = {r["queue"]: r for r in rows}
    paused = paused_queues()
    alive = Worker.objects.filter(state=Worker.State.RUNNING).values_list("queues", flat=True)
    served: dict[str, int] = {}
    for names in alive:
        for name in names:
            served[name] = served.get(name, 0) + 1
    names = access.queues(sorted(set(stats) | set(paused) | set(served)))
    queues = []
    for name in names:
        row = stats.get(name, {})
        oldest = row.get("oldest")
        queues.append({
            "name": name, "scheduled": row.get("scheduled", 0), "running": row.get("running", 0),
            "failed": row.get("failed", 0), "oldest": oldest,
            "oldest_age": (now - oldest) if oldest else None,
            "paused": paused.get(name), "workers": served.get(name, 0),
        })
    return render_page(request, "dashboard/queues.html", {"queues": queues})


@action
def pause(request: HttpRequest, actor: actions.Actor, queue: str) -> HttpResponse:
    actions.pause_queue(actor, queue, reason(request))
    return done(request, f"Queue {queue} paused: workers claim none of its jobs until resumed.",
                "dashboard:queues")


@action
def resume(request: HttpRequest, actor: actions.Actor, queue: str) -> HttpResponse:
    actions.resume_queue(actor, queue, reason(request))
    return done(request, f"Queue {queue} resumed.", "dashboard:queues")
