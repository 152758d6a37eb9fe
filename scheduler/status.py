"""Is Relay healthy? Workers, queues and the scheduler leader, read cheaply, judged by rules.

`read()` is what `relay_status` prints and what the metrics' gauges are made of; `problems()`
turns it into the reasons a liveness probe should fail. Every query is bounded by what is
live, never by history: workers through their state index (running and stopping rows only),
waiting counts through the claim index, running counts through the state index, one probe per
queue for its longest-due job, one row for the leader lease. Ages use the database's clock,
the one every worker and scheduler compares against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count

from queues.conf import relay_settings
from queues.models import WAITING_STATES, Job, JobState, Worker

LIVE_WORKER_STATES = (Worker.State.RUNNING, Worker.State.STOPPING)
MAX_QUEUE_PROBES = 100  # queues whose longest-due job is looked up

# Problem codes, in the order they are reported.
NO_WORKER = "no_worker"  # no live worker claims jobs (or none serving the queues asked about)
QUEUE_UNSERVED = "queue_unserved"  # an unpaused queue has due jobs and no live worker serves it
NO_SCHEDULER = "no_scheduler"  # no scheduler holds the leader lease (--require-scheduler)
QUEUE_LAG = "queue_lag"  # an unpaused queue's longest-due job has waited too long (--max-lag)


@dataclass
class WorkerStatus:
    id: int
    name: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    state: str
    heartbeat_age: float  # seconds since its last heartbeat
    alive: bool  # heartbeat within WORKER_STALE_AFTER

    @property
    def claiming(self) -> bool:
        """Alive and taking new jobs (a stopping worker only drains what it holds)."""
        return self.alive and self.state == Worker.State.RUNNING


@dataclass
class QueueStatus:
    name: str
    waiting: int = 0  # scheduled or awaiting a retry, due or not
    running: int = 0
    paused: bool = False
    workers: int = 0  # live workers claiming its jobs (not those stopping)
    oldest_due_age: float | None = None  # how long its longest-due waiting job has been due

    @property
    def has_due_jobs(self) -> bool:
        return self.oldest_due_age is not None


@dataclass
class SchedulerStatus:
    holder: str = ""  # the last leader's name
    live: bool = False  # it holds an unexpired lease
    last_tick_at: datetime | None = None
    last_tick_age: float | None = None  # seconds


@dataclass
class Problem:
    code: str
    message: str
    queue: str = ""


@dataclass
class Status:
    now: datetime
    workers: list[WorkerStatus] = field(default_factory=list)
    queues: list[QueueStatus] = field(default_factory=list)
    scheduler: SchedulerStatus = field(default_factory=SchedulerStatus)

    @property
    def workers_alive(self) -> int:
        return sum(1 for w in self.workers if w.alive)

    @property
    def workers_stale(self) -> int:
        return sum(1 for w in self.workers if not w.alive)


def read(now: datetime | None = None) -> Status:
    from queues.operations import paused_queues
    from scheduler.clock import now as db_now

    status = Status(now=now or db_now())
    status.workers = _workers(status.now)
    queues: dict[str, QueueStatus] = {}

    def queue(name: str) -> QueueStatus:
        return queues.setdefault(name, QueueStatus(name))

    # Waiting jobs: the partial claim index holds exactly them, with their queue.
    for row in (Job.objects.filter(state__in=WAITING_STATES).values("queue")
                .annotate(n=Count("*")).order_by()):
        queue(row["queue"]).waiting = row["n"]
    # Running jobs: the state index bounds the count to the running set (index-only).
    for row in (Job.objects.filter(state=JobState.RUNNING).values("queue")
                .annotate(n=Count("*")).order_by()):
        queue(row["queue"]).running = row["n"]
    for name in paused_queues():
        queue(name).paused = True
    for worker in status.workers:
        if worker.claiming:
            for name in worker.queues:
                queue(name).workers += 1
    status.queues = [queues[name] for name in sorted(queues)]
    for row in [q for q in status.queues if q.waiting][:MAX_QUEUE_PROBES]:
        row.oldest_due_age = _oldest_due_age(row.name, status.now)
    status.scheduler = _scheduler(status.now)
    return status


def problems(status: Status, *, queues: list[str] | None = None, require_scheduler: bool = False,
             max_lag: float | None = None) -> list[Problem]:
    """What makes Relay unhealthy, per the documented rules. With `queues`, only those queues
    count: a live worker must serve one of them, and only their backlog is judged."""
    found: list[Problem] = []
    watched = [q for q in status.queues if queues is None or q.name in queues]
    if queues is None:
        if not any(w.claiming for w in status.workers):
            found.append(Problem(NO_WORKER, "no live worker claims jobs: none is running and "
                                 "has sent a heartbeat in the last "
                                 f"{span(relay_settings().WORKER_STALE_AFTER)}"))
    else:
        serving = {name for w in status.workers if w.claiming for name in w.queues}
        if not serving & set(queues):
            found.append(Problem(NO_WORKER, "no live worker serves "
                                 f"{', '.join(sorted(queues))}"))
    for q in watched:
        if q.has_due_jobs and not q.paused and not q.workers:
            found.append(Problem(QUEUE_UNSERVED, f"queue {q.name} has due jobs (waiting "
                                 f"{span(q.oldest_due_age)}) and no live worker serves it",
                                 q.name))
    if require_scheduler and not status.scheduler.live:
        found.append(Problem(NO_SCHEDULER, "no scheduler holds the leader lease"
                             + (f" (last tick {span(status.scheduler.last_tick_age)} ago)"
                                if status.scheduler.last_tick_age is not None else "")))
    if max_lag is not None:
        for q in watched:
            if not q.paused and q.has_due_jobs and q.oldest_due_age > max_lag:
                found.append(Problem(QUEUE_LAG, f"queue {q.name}: its longest-due job has "
                                     f"waited {span(q.oldest_due_age)} (limit "
                                     f"{span(max_lag)})", q.name))
    return found


def _workers(now: datetime) -> list[WorkerStatus]:
    stale_after = relay_settings().WORKER_STALE_AFTER
    rows = Worker.objects.filter(state__in=LIVE_WORKER_STATES).order_by("name", "id")
    found = []
    for w in rows:
        age = max(0.0, (now - w.last_heartbeat_at).total_seconds())
        found.append(WorkerStatus(
            id=w.pk, name=w.name, host=w.host, pid=w.pid, queues=list(w.queues or ()),
            concurrency=w.concurrency, state=w.state, heartbeat_age=age,
            alive=age <= stale_after))
    return found


def _oldest_due_age(queue: str, now: datetime) -> float | None:
    # Bounded by the queue's waiting jobs (the claim index), not by the table.
    run_at = (Job.objects.filter(queue=queue, state__in=WAITING_STATES, run_at__lte=now)
              .order_by("run_at").values_list("run_at", flat=True).first())
    return None if run_at is None else max(0.0, (now - run_at).total_seconds())


def _scheduler(now: datetime) -> SchedulerStatus:
    from scheduler import leader

    lease = leader.current()
    if lease is None:
        return SchedulerStatus()
    return SchedulerStatus(
        holder=lease.holder,
        live=bool(lease.holder and lease.expires_at and lease.expires_at > now),
        last_tick_at=lease.last_tick_at,
        last_tick_age=(max(0.0, (now - lease.last_tick_at).total_seconds())
                       if lease.last_tick_at else None))


def span(seconds: float | None) -> str:
    """A duration for people: 4.2s, 3m07s, 2h05m00s."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
