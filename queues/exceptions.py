"""Exceptions raised by Relay's queue API and seen by task handlers."""

from __future__ import annotations


class RelayError(Exception):
    """Base class of every error Relay raises on purpose."""


class EnqueueError(RelayError, ValueError):
    """The enqueue call was invalid; nothing was written."""


class UnknownTask(EnqueueError, LookupError):
    """The task name is not registered in this process."""


class InvalidPayload(EnqueueError, TypeError):
    """Arguments (or a result) that cannot be stored as JSON."""


class InvalidQueueName(EnqueueError):
    pass


class InvalidSchedule(EnqueueError):
    """A negative delay, a naive run_at, or both run_at and delay."""


class InvalidOption(EnqueueError):
    """An out-of-range job option: max_attempts, priority, timeouts, dedup key, tags."""


class InvalidTransition(RelayError):
    """The job is not in a state that allows the requested action (e.g. retry a success)."""


class TaskDefinitionError(RelayError):
    """A @task declaration is invalid (bad name, duplicate name, bad option)."""


class DoNotRetry(Exception):
    """Raise (or subclass) in a handler to fail the job at once, without further attempts.

    The job goes straight to dead letters with this error, whatever its max_attempts.
    """


class JobInterrupted(BaseException):
    """Raised inside a handler when its worker stops it.

    A BaseException, like KeyboardInterrupt, so `except Exception:` in handler code does not
    swallow it; `finally:` blocks still run.
    """

    reason = "interrupted"


class JobTimedOut(JobInterrupted):
    reason = "timeout"


class JobCancelled(JobInterrupted):
    reason = "cancelled"


class LeaseExpired(JobInterrupted):
    reason = "lease expired"


class WorkerShutdown(JobInterrupted):
    reason = "worker shutdown"


class HandlerCrashed(RelayError):
    """Recorded (never raised) when a handler's process dies: os._exit, a signal, OOM."""
