"""Test helpers that put jobs into a state the way a worker would: through the queue's own
store functions (claim, ack, fail), without starting a process. For page and action tests
that need, say, a dead letter with a traceback in milliseconds."""

from __future__ import annotations

from typing import Any

from queues import enqueue, store
from queues.models import Job, Outcome, Worker

_worker: dict[str, int] = {}


def worker(name: str = "test-worker", queues: list[str] | None = None) -> Worker:
    """A registered worker (not a process) that claims for the helpers below."""
    queues = queues or ["default"]
    from queues.registry import registry

    return store.register_worker(name=name, host="test-host", pid=1, queues=queues,
                                 tasks=registry.names(), concurrency=1)


def run(job: Job, *, by: Worker | None = None, output: Any = None, error: str | None = None,
        error_type: str = "RuntimeError", traceback: str = "", retryable: bool = True) -> Job:
    """Claim `job` (it must be due) and end the attempt: success with `output`, or a failure
    with `error` (which retries or dead-letters per the job's policy)."""
    by = by or worker(queues=[job.queue])
    batch = store.claim(worker_id=by.pk, queues=[job.queue], tasks=[job.task], limit=1000)
    claimed = [c for c in batch if c.id == job.pk]
    # Other due jobs claimed on the way go back untouched.
    store.release_unstarted([(c.id, c.lease_token) for c in batch if c.id != job.pk])
    if not claimed:
        raise AssertionError(f"job #{job.pk} was not claimable")
    delivery = claimed[0]
    if error is None:
        store.ack_success([store.Success(job.pk, delivery.lease_token, output)])
    else:
        store.finish_failure(store.Failure(
            job.pk, delivery.lease_token, Outcome.ERROR, error_type=error_type,
            error_message=error, traceback=traceback or f"Traceback (most recent call last):\n"
            f"  File \"handler.py\", line 1, in handler\n{error_type}: {error}\n",
            retryable=retryable))
    job.refresh_from_db()
    return job


def dead_letter(task: str = "tests.fail", *, error: str = "boom", queue: str = "default",
                **kwargs: Any) -> Job:
    """A job that failed for good: enqueued, claimed once, failed not-retryably."""
    job = enqueue(task, queue=queue, max_attempts=1, **kwargs)
    return run(job, error=error, retryable=False)
