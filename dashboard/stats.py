"""The overview's numbers, each from a bounded, indexed query.

Nothing here counts the whole jobs table: active states come through the state index (or the
partial claim index), finished jobs only over the last 24 hours (successes from the execution
outcome index, dead letters and cancellations from the state index, whose sets stay small),
and the chart groups the executions that finished in the window (execution outcome index).
Per-queue numbers are narrowed to what the user may see (`Access.jobs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import BooleanField, Count, OuterRef, Q, Subquery, Value
from django.db.models.functions import TruncHour

from dashboard.access import Access
from queues.conf import relay_settings
from queues.models import (
    WAITING_STATES,
    Execution,
    Job,
    JobState,
    Outcome,
    Worker,
)

WINDOW = timedelta(hours=24)
HOURS = 24
# Outcomes drawn as failures in the chart (a cancelled attempt is neither).
BAD_OUTCOMES = (Outcome.ERROR, Outcome.TIMEOUT, Outcome.LOST)
LIVE_WORKER_STATES = (Worker.State.RUNNING, Worker.State.STOPPING)
MAX_LATENCY_PROBES = 100  # queues whose oldest due job is looked up

# Chart geometry (SVG user units).
CHART_WIDTH = 720
CHART_HEIGHT = 160
CHART_TOP = 10
CHART_BOTTOM = 22  # room for the hour labels


@dataclass
class QueueRow:
    name: str
    scheduled: int = 0
    running: int = 0
    failed: int = 0
    dead: int = 0
    paused: Any = None  # the QueuePause row
    workers: int = 0
    oldest: Any = None  # the waiting job due longest ago
    latency: timedelta | None = None  # how long it has been due


@dataclass
class Bar:
    start: datetime
    ok: int = 0
    bad: int = 0
    # Filled by `Chart.layout`.
    x: float = 0
    width: float = 0
    ok_y: float = 0
    ok_height: float = 0
    bad_y: float = 0
    bad_height: float = 0

    @property
    def end(self) -> datetime:
        return self.start + timedelta(hours=1)

    @property
    def total(self) -> int:
        return self.ok + self.bad

    @property
    def label(self) -> str:
        return f"{self.start:%H}"


@dataclass
class Chart:
    bars: list[Bar]
    succeeded_24h: int = 0  # successes in the exact last 24 hours
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    peak: int = 0

    @property
    def ok(self) -> int:
        return sum(b.ok for b in self.bars)

    @property
    def bad(self) -> int:
        return sum(b.bad for b in self.bars)

    @property
    def baseline(self) -> int:
        return self.height - CHART_BOTTOM

    def layout(self) -> Chart:
        """Bar positions: stacked (succeeded below, failed on top), scaled to the busiest
        hour."""
        self.peak = max((b.total for b in self.bars), default=0)
        slot = self.width / max(len(self.bars), 1)
        usable = self.baseline - CHART_TOP
        for i, bar in enumerate(self.bars):
            bar.x = round(i * slot + 1, 1)
            bar.width = round(slot - 2, 1)
            scale = usable / self.peak if self.peak else 0
            bar.ok_height = round(bar.ok * scale, 1)
            bar.bad_height = round(bar.bad * scale, 1)
            bar.ok_y = round(self.baseline - bar.ok_height, 1)
            bar.bad_y = round(bar.ok_y - bar.bad_height, 1)
        return self


@dataclass
class Overview:
    now: datetime
    states: dict[str, int] = field(default_factory=dict)
    finished: dict[str, int] = field(default_factory=dict)  # last 24 h, by final state
    queues: list[QueueRow] = field(default_factory=list)
    chart: Chart | None = None
    oldest: Job | None = None
    oldest_age: timedelta | None = None
    workers_alive: int = 0
    workers_stale: int = 0
    paused: list[Any] = field(default_factory=list)
    scheduler: Any = None  # the SchedulerLease row
    scheduler_live: bool = False
    runs_active: dict[str, int] = field(default_factory=dict)

    @property
    def dead_letters(self) -> int:
        return self.states.get(JobState.DEAD_LETTER, 0)

    @property
    def active_runs(self) -> int:
        return sum(self.runs_active.values())


def hour_floor(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def overview(access: Access, now: datetime | None = None) -> Overview:
    from scheduler.clock import now as db_now

    now = now or db_now()
    data = Overview(now=now)
    jobs = access.jobs(Job.objects.all())
    rows = _queue_rows(access, jobs, data)
    data.queues = rows
    data.chart = chart(access, now)
    data.finished = _finished(access, jobs, data)
    _oldest(jobs, data)
    _workers(data)
    _scheduler(data)
    _runs(access, data)
    return data


def queue_table(access: Access, now: datetime | None = None) -> list[QueueRow]:
    """The queues the user may see, with counts, pause, workers and oldest due job: the
    overview's queue table, on its own for the queues page."""
    from scheduler.clock import now as db_now

    data = Overview(now=now or db_now())
    jobs = access.jobs(Job.objects.all())
    data.queues = _queue_rows(access, jobs, data)
    _oldest(jobs, data)
    return data.queues


def _queue_rows(access: Access, jobs: Any, data: Overview) -> list[QueueRow]:
    from queues.operations import paused_queues

    by_queue: dict[str, QueueRow] = {}
    states: dict[str, int] = {s: 0 for s in (JobState.SCHEDULED, JobState.RUNNING,
                                              JobState.FAILED, JobState.DEAD_LETTER)}
    # Waiting jobs per queue: the partial claim index holds exactly them, with their queue
    # (an index-only scan when the visibility map is current; its predicate must match).
    for row in (jobs.filter(state__in=WAITING_STATES).values("queue")
                .annotate(n=Count("*")).order_by()):
        by_queue.setdefault(row["queue"], QueueRow(row["queue"])).scheduled = row["n"]
    # Running (a worker's worth each), failed-and-retrying and open dead letters: the state
    # index bounds these to their own (small) sets.
    for row in (jobs.filter(state__in=[JobState.RUNNING, JobState.FAILED,
                                       JobState.DEAD_LETTER])
                .values("queue", "state").annotate(n=Count("*")).order_by()):
        queue = by_queue.setdefault(row["queue"], QueueRow(row["queue"]))
        attr = "dead" if row["state"] == JobState.DEAD_LETTER else row["state"]
        setattr(queue, attr, row["n"])
    for queue in by_queue.values():
        # waiting = scheduled + failed (two statements: never below zero in between)
        queue.scheduled = max(0, queue.scheduled - queue.failed)
        states[JobState.SCHEDULED] += queue.scheduled
        states[JobState.RUNNING] += queue.running
        states[JobState.FAILED] += queue.failed
        states[JobState.DEAD_LETTER] += queue.dead
    data.states = states
    paused = paused_queues()
    served: dict[str, int] = {}
    for names in Worker.objects.filter(state=Worker.State.RUNNING).values_list("queues",
                                                                                flat=True):
        for name in names or ():
            served[name] = served.get(name, 0) + 1
    names = access.queues(sorted(set(by_queue) | set(paused) | set(served)))
    visible = set(names)
    rows = []
    for name in names:
        row = by_queue.get(name) or QueueRow(name)
        row.paused = paused.get(name)
        row.workers = served.get(name, 0)
        rows.append(row)
    # A scoped user may see jobs of their workflows in queues they do not otherwise see: those
    # rows count only the user's own visible jobs there.
    rows += [r for n, r in sorted(by_queue.items()) if n not in visible]
    data.paused = [paused[n] for n in names if n in paused]
    return rows


def _finished(access: Access, jobs: Any, data: Overview) -> dict[str, int]:
    since = data.now - WINDOW
    # Successes: one successful execution per succeeded job, counted with the chart (the
    # execution outcome index), never by scanning every succeeded job for its finish time.
    finished = {JobState.SUCCESS: data.chart.succeeded_24h if data.chart else 0}
    # Dead letters and cancellations: the state index holds only those jobs.
    rows = (jobs.filter(state__in=[JobState.DEAD_LETTER, JobState.CANCELLED],
                        finished_at__gte=since, finished_at__lte=data.now)
            .values("state").annotate(n=Count("*")).order_by())
    counts = {r["state"]: r["n"] for r in rows}
    finished[JobState.DEAD_LETTER] = counts.get(JobState.DEAD_LETTER, 0)
    finished[JobState.CANCELLED] = counts.get(JobState.CANCELLED, 0)
    return finished


def _executions(access: Access, qs: Any) -> Any:
    """Executions of jobs the user may see. For a user who does not see everything, each
    execution's job is checked by primary key (a scalar subquery per row, which PostgreSQL
    never turns into a join): the cost follows the executions in the window, not the jobs
    table, which a hash join on "queue IN (..) OR meta->workflow IN (..)" would scan."""
    if access.sees_everything:
        return qs
    _, queues, workflows = access.visible_scope
    if not workflows:
        # Queues only: a join the queue index can serve (index-only) is cheaper still.
        return qs.filter(job__queue__in=list(queues))
    mine = access.jobs(Job.objects.filter(pk=OuterRef("job_id")))
    return qs.filter(Subquery(mine.annotate(ok=Value(True)).values("ok")[:1],
                              output_field=BooleanField()))


def chart(access: Access, now: datetime) -> Chart:
    """Executions finished per hour over the last 24 hours (the current hour last):
    succeeded vs failed (error, timeout, lost). The same query counts the successes of the
    exact last 24 hours, which start up to an hour before the first bar."""
    first = hour_floor(now) - timedelta(hours=HOURS - 1)
    since = now - WINDOW
    bars = [Bar(first + timedelta(hours=i)) for i in range(HOURS)]
    index = {b.start: b for b in bars}
    rows = (_executions(access, Execution.objects.filter(
                outcome__in=[Outcome.SUCCESS, *BAD_OUTCOMES], finished_at__gte=since,
                finished_at__lt=first + timedelta(hours=HOURS)))
            .annotate(hour=TruncHour("finished_at", tzinfo=UTC))
            # COUNT(*), not COUNT(id): the outcome index alone answers (index-only scan).
            .values("hour", "outcome")
            .annotate(n=Count("*"), recent=Count("finished_at", filter=Q(finished_at__lte=now)))
            .order_by())
    succeeded = 0
    for row in rows:
        if row["outcome"] == Outcome.SUCCESS:
            succeeded += row["recent"]
        bar = index.get(hour_floor(row["hour"]))
        if bar is None:
            continue  # the hour before the first bar: only in the 24-hour count
        if row["outcome"] == Outcome.SUCCESS:
            bar.ok += row["n"]
        else:
            bar.bad += row["n"]
    return Chart(bars, succeeded_24h=succeeded).layout()


def _oldest(jobs: Any, data: Overview) -> None:
    """Per queue, the waiting job due longest ago (its wait is the queue's latency); the
    oldest of those. One probe per queue with waiting jobs, each bounded by that queue's
    waiting jobs (the claim index), so the cost follows the backlog, not the table."""
    for row in data.queues[:MAX_LATENCY_PROBES]:
        if not (row.scheduled or row.failed):
            continue
        head = (jobs.filter(queue=row.name, state__in=WAITING_STATES, run_at__lte=data.now)
                .only("id", "task", "queue", "run_at", "state").order_by("run_at", "id")
                .first())
        if head is None:
            continue
        row.oldest = head
        row.latency = data.now - head.run_at
        if data.oldest is None or head.run_at < data.oldest.run_at:
            data.oldest, data.oldest_age = head, row.latency


def _workers(data: Overview) -> None:
    stale_before = data.now - timedelta(seconds=relay_settings().WORKER_STALE_AFTER)
    counts = Worker.objects.filter(state__in=LIVE_WORKER_STATES).aggregate(
        alive=Count("id", filter=Q(last_heartbeat_at__gte=stale_before)),
        stale=Count("id", filter=Q(last_heartbeat_at__lt=stale_before)))
    data.workers_alive = counts["alive"] or 0
    data.workers_stale = counts["stale"] or 0


def _scheduler(data: Overview) -> None:
    from scheduler import leader

    lease = leader.current()
    data.scheduler = lease
    if lease is not None:
        data.scheduler_live = bool(lease.holder and lease.expires_at
                                   and lease.expires_at > data.now)


def _runs(access: Access, data: Overview) -> None:
    from scheduler.models import RUN_ACTIVE_STATES, WorkflowRun

    rows = (access.runs(WorkflowRun.objects.filter(state__in=RUN_ACTIVE_STATES))
            .values("state").annotate(n=Count("*")).order_by())
    data.runs_active = {r["state"]: r["n"] for r in rows}
