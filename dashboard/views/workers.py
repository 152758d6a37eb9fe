"""Workers: who is alive, who went silent, and what each one is running right now."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.http import HttpRequest, HttpResponse

from dashboard.access import access_for
from dashboard.views.base import page, render_page
from queues.conf import relay_settings
from queues.models import Job, JobState, Worker

LIVE_STATES = (Worker.State.RUNNING, Worker.State.STOPPING)
ENDED_STATES = (Worker.State.STOPPED, Worker.State.LOST)
RECENT = timedelta(hours=24)  # stopped and lost workers are listed this long
MAX_LIVE = 500
MAX_ENDED = 100
MAX_CURRENT_JOBS = 2000


@dataclass
class WorkerRow:
    worker: Worker
    queues: list[str]
    stale: bool
    heartbeat_age: timedelta
    jobs: list[Any] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return self.worker.state in LIVE_STATES


@page
def worker_list(request: HttpRequest) -> HttpResponse:
    from scheduler.clock import now as db_now

    access = access_for(request)
    now = db_now()  # heartbeats are stamped with the database clock
    stale_after = relay_settings().WORKER_STALE_AFTER
    live = list(Worker.objects.filter(state__in=LIVE_STATES).order_by("-started_at", "-id")
                [:MAX_LIVE])
    # The state index (state, last_heartbeat_at) bounds this to the last day's workers.
    ended = list(Worker.objects.filter(state__in=ENDED_STATES,
                                       last_heartbeat_at__gte=now - RECENT)
                 .order_by("-last_heartbeat_at", "-id")[:MAX_ENDED])
    rows: dict[int, WorkerRow] = {}
    for worker in live + ended:
        queues = access.queues(list(worker.queues or []))
        if not queues and not access.sees_everything:
            continue  # serves only queues this user may not see
        age = now - worker.last_heartbeat_at
        rows[worker.pk] = WorkerRow(worker, queues, worker.state in LIVE_STATES
                                    and age.total_seconds() > stale_after, age)
    current = (access.jobs(Job.objects.filter(state=JobState.RUNNING,
                                              worker_id__in=[r.worker.pk for r in rows.values()
                                                             if r.live]))
               .only("id", "task", "queue", "started_at", "worker_id", "attempts",
                     "leased_until", "cancel_requested_at")
               .order_by("started_at", "id")[:MAX_CURRENT_JOBS])
    for job in current:
        job.running_for = _age(now, job.started_at)
        rows[job.worker_id].jobs.append(job)
    workers = list(rows.values())
    return render_page(request, "dashboard/workers.html", {
        "workers": workers, "stale_after": stale_after, "now": now,
        "alive": sum(1 for r in workers if r.live and not r.stale),
        "stale": sum(1 for r in workers if r.stale),
        "live_truncated": len(live) == MAX_LIVE, "ended_truncated": len(ended) == MAX_ENDED,
    })


def _age(now: datetime, then: datetime | None) -> timedelta | None:
    return now - then if then else None

