"""What a handler declared with `takes_context=True` receives as its first argument."""

from __future__ import annotations

import json
from typing import Any

from queues.exceptions import JobCancelled

# Reasons the supervisor writes into the shared interrupt slot before signalling the child.
REASON_TIMEOUT = 1
REASON_CANCEL = 2
REASON_LEASE = 3
REASON_SHUTDOWN = 4


class JobContext:
    """The running attempt: ids, a cancellation check, progress reporting, lease extension."""

    def __init__(self, job: dict[str, Any], channel: Any, interrupt: Any) -> None:
        self.job_id: int = job["id"]
        self.task: str = job["task"]
        self.queue: str = job["queue"]
        self.attempt: int = job["attempt"]
        self.max_attempts: int | None = job["max_attempts"]
        self.lease_token: int = job["lease_token"]
        self.ack_timeout: float = job["ack_timeout"]
        self._channel = channel
        self._interrupt = interrupt

    @property
    def cancelled(self) -> bool:
        """True once an operator asked to cancel this job (the worker also interrupts the
        handler with JobCancelled; check this in code that catches BaseException)."""
        return self._interrupt[0] == self.job_id and self._interrupt[1] == REASON_CANCEL

    def check_cancelled(self) -> None:
        if self.cancelled:
            raise JobCancelled(f"job {self.job_id} was cancelled")

    def progress(self, value: Any) -> None:
        """Record progress (any JSON value, e.g. {"done": 40, "total": 100}) on the job."""
        json.dumps(value, allow_nan=False)
        self._channel.send(("progress", self.job_id, value))

    def extend_lease(self, seconds: float | None = None, *, progress: Any = None) -> None:
        """Keep this delivery: push the lease deadline to now + seconds (default: the job's
        ack timeout). A long job that calls this regularly is never redelivered."""
        if seconds is not None and not seconds > 0:
            raise ValueError("extend_lease seconds must be > 0")
        if progress is not None:
            json.dumps(progress, allow_nan=False)
        self._channel.send(("extend", self.job_id, seconds or self.ack_timeout, progress))
