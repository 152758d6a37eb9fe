"""Everything /metrics reports, read from the database in one pass into plain data.

Counters come from `rollup` (cost: the rows since the last fold). Gauges come from what is live:
`scheduler.status` (workers, queue backlogs, the leader lease; index-bounded), open dead letters
per queue (index-only on the state index) and workflow runs by state (the run state
index). Nothing here depends on the web process that happens to be scraped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count

from dashboard.metrics import rollup
from queues.models import Job, JobState
from scheduler import status as health


@dataclass
class Snapshot:
    now: datetime
    totals: rollup.Totals
    status: health.Status
    dead_letters_open: dict[str, int] = field(default_factory=dict)  # by queue
    runs: dict[str, int] = field(default_factory=dict)  # workflow runs by state
    seconds: float = 0.0  # time spent reading


def take() -> Snapshot:
    from scheduler.clock import now as db_now
    from scheduler.models import WorkflowRun

    started = time.monotonic()
    now = db_now()
    snap = Snapshot(now=now, totals=rollup.totals(now), status=health.read(now))
    # By queue only: the state index includes the queue, so this is an index-only scan (a task
    # label would read every dead job's row).
    for row in (Job.objects.filter(state=JobState.DEAD_LETTER).values("queue")
                .annotate(n=Count("*")).order_by()):
        snap.dead_letters_open[row["queue"]] = row["n"]
    snap.runs = {r["state"]: r["n"] for r in
                 WorkflowRun.objects.values("state").annotate(n=Count("*")).order_by()}
    snap.seconds = time.monotonic() - started
    return snap
