"""Relay's queue engine: jobs, workers, retries and dead letters.

Public API::

    from queues import task, enqueue

    @task(queue="reports", max_attempts=3)
    def build_report(customer_id): ...

    enqueue(build_report, 42, delay=60)

Names are imported lazily so `import queues` works before Django's app registry is ready.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Call",
    "DoNotRetry",
    "EnqueueError",
    "InvalidTransition",
    "JobContext",
    "NowPlus",
    "cancel",
    "discard",
    "enqueue",
    "enqueue_many",
    "pause_queue",
    "paused_queues",
    "redeliver_expired",
    "resume_queue",
    "retry",
    "task",
]

_EXPORTS = {
    "task": "queues.registry",
    "Call": "queues.operations",
    "enqueue": "queues.operations",
    "enqueue_many": "queues.operations",
    "cancel": "queues.operations",
    "retry": "queues.operations",
    "discard": "queues.operations",
    "redeliver_expired": "queues.operations",
    "pause_queue": "queues.operations",
    "resume_queue": "queues.operations",
    "paused_queues": "queues.operations",
    "EnqueueError": "queues.exceptions",
    "InvalidTransition": "queues.exceptions",
    "DoNotRetry": "queues.exceptions",
    "JobContext": "queues.worker.context",
    # The database's clock plus n seconds, for other apps' leases and deadlines.
    "NowPlus": "queues.store.clock",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'queues' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module), name)
