"""Worker registration, heartbeats and the per-worker view of its own leases."""

from __future__ import annotations

from django.db.models import Q
from django.db.models.functions import Now

from queues.models import Job, JobState, Worker
from queues.store.clock import NowPlus


def register_worker(*, name: str, host: str, pid: int, queues: list[str], tasks: list[str],
                    concurrency: int) -> Worker:
    return Worker.objects.create(
        name=name, host=host, pid=pid, queues=queues, tasks=tasks, concurrency=concurrency
    )


def heartbeat(worker_id: int, *, stopping: bool = False) -> bool:
    """Record that the worker is alive. Returns True if it had been presumed dead (its jobs
    were redelivered while it was frozen or cut off) and is now back."""
    was_lost = Worker.objects.filter(id=worker_id, state=Worker.State.LOST).exists()
    state = Worker.State.STOPPING if stopping else Worker.State.RUNNING
    updated = Worker.objects.filter(id=worker_id).update(last_heartbeat_at=Now(), state=state)
    return was_lost or not updated


def lease_report(worker_id: int, leases: dict[int, int]) -> tuple[set[int], set[int]]:
    """For the jobs this worker believes it runs ({job_id: lease_token}): which ones it no
    longer holds (lease taken over or job finished elsewhere), and which have a cancel request."""
    if not leases:
        return set(), set()
    rows = Job.objects.filter(id__in=list(leases)).values_list(
        "id", "lease_token", "state", "cancel_requested_at"
    )
    held, cancel = set(), set()
    for job_id, token, state, cancel_requested_at in rows:
        if token == leases[job_id] and state == JobState.RUNNING:
            held.add(job_id)
            if cancel_requested_at is not None:
                cancel.add(job_id)
    return set(leases) - held, cancel


def stop_worker(worker_id: int) -> None:
    Worker.objects.filter(id=worker_id).update(state=Worker.State.STOPPED, stopped_at=Now())


def mark_stale_workers(stale_after: float) -> int:
    """Workers silent for longer than `stale_after` seconds (database clock) are lost."""
    return Worker.objects.filter(
        state__in=[Worker.State.RUNNING, Worker.State.STOPPING],
        last_heartbeat_at__lt=NowPlus(-stale_after),
    ).update(state=Worker.State.LOST, stopped_at=Now())


def orphaned_leases_q() -> Q:
    """Running jobs nobody is working on: expired lease, or a worker that is gone."""
    return Q(state=JobState.RUNNING) & (
        Q(leased_until__lt=Now())
        | Q(worker__isnull=True)
        | Q(worker__state__in=[Worker.State.LOST, Worker.State.STOPPED])
    )


