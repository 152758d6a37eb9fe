"""Queues: depth per state, oldest waiting job, who serves them, pause and resume."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from dashboard import actions, stats
from dashboard.access import access_for
from dashboard.views.base import action, done, page, reason, render_page


@page
def queue_list(request: HttpRequest) -> HttpResponse:
    queues = stats.queue_table(access_for(request))
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
