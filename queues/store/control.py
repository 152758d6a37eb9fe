"""Operator actions: cancel, retry, discard one job; pause and resume a queue. Each checks the
state it acts on in the same transaction that changes it, so two operators clicking at once
cannot double-apply."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models.functions import Now

from queues.exceptions import InvalidTransition
from queues.models import WAITING_STATES, DeadLetter, Job, JobState, QueuePause
from queues.store.finish import _announce
from queues.store.notify import announce


def cancel(job_id: int) -> Job:
    """Cancel a waiting job at once; ask the worker of a running job to stop it."""
    with transaction.atomic():
        job = _locked(job_id)
        if job.state in WAITING_STATES:
            Job.objects.filter(id=job_id).update(
                state=JobState.CANCELLED, finished_at=Now(), cancel_requested_at=Now()
            )
            _announce(job_id, JobState.CANCELLED, job.task, job.queue, job.meta)
        elif job.state == JobState.RUNNING:
            if job.cancel_requested_at is None:
                Job.objects.filter(id=job_id).update(cancel_requested_at=Now())
        else:
            raise InvalidTransition(f"Job #{job_id} is {job.state}; only waiting or running "
                                    f"jobs can be cancelled")
    job.refresh_from_db()
    return job


def retry(job_id: int, *, user: Any = None, note: str = "", args: list | None = None,
          kwargs: dict | None = None) -> Job:
    """Run a failed job now, or send a dead-lettered or cancelled one back to the queue with a
    fresh set of attempts. `args`/`kwargs`, when given, replace the job's arguments first (a
    fixed payload); they are validated by the caller."""
    with transaction.atomic():
        job = _locked(job_id)
        changes: dict[str, Any] = {}
        if args is not None:
            changes["args"] = args
        if kwargs is not None:
            changes["kwargs"] = kwargs
        if job.state == JobState.FAILED:
            Job.objects.filter(id=job_id).update(run_at=Now(), **changes)
        elif job.state in (JobState.DEAD_LETTER, JobState.CANCELLED):
            try:
                with transaction.atomic():
                    Job.objects.filter(id=job_id).update(
                        state=JobState.SCHEDULED, run_at=Now(), attempts=0, finished_at=None,
                        cancel_requested_at=None, **changes,
                    )
            except IntegrityError:
                raise InvalidTransition(
                    f"Job #{job_id} cannot be retried: another active job holds its dedup key "
                    f"{job.dedup_key!r}"
                ) from None
            _resolve(job_id, DeadLetter.Resolution.RETRIED, user, note)
        else:
            raise InvalidTransition(
                f"Job #{job_id} is {job.state}; only failed, dead-lettered or cancelled jobs "
                f"can be retried"
            )
        announce([job.queue])
    job.refresh_from_db()
    return job


def discard(job_id: int, *, user: Any = None, note: str = "") -> Job:
    """Acknowledge a dead letter as given up: the job stays dead, the letter is resolved."""
    with transaction.atomic():
        job = _locked(job_id)
        if job.state != JobState.DEAD_LETTER or not _resolve(
            job_id, DeadLetter.Resolution.DISCARDED, user, note
        ):
            raise InvalidTransition(f"Job #{job_id} has no open dead letter to discard")
    job.refresh_from_db()
    return job


def pause_queue(queue: str, *, by: str = "", reason: str = "") -> bool:
    """Stop workers claiming the queue's jobs (running ones finish). False if already paused."""
    try:
        with transaction.atomic():
            QueuePause.objects.create(queue=queue, paused_by=by, reason=reason)
    except IntegrityError:
        return False
    return True


def resume_queue(queue: str) -> bool:
    """Let workers claim the queue's jobs again, waking them at once. False if not paused."""
    with transaction.atomic():
        deleted, _ = QueuePause.objects.filter(queue=queue).delete()
        if deleted:
            announce([queue])
    return bool(deleted)


def _resolve(job_id: int, resolution: str, user: Any, note: str) -> int:
    return DeadLetter.objects.filter(job_id=job_id, resolved_at__isnull=True).update(
        resolved_at=Now(),
        resolution=resolution,
        resolved_by=user if getattr(user, "pk", None) else None,
        resolution_note=note,
    )


def _locked(job_id: int) -> Job:
    try:
        return Job.objects.select_for_update().get(id=job_id)
    except Job.DoesNotExist:
        raise InvalidTransition(f"Job #{job_id} does not exist") from None
