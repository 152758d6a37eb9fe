"""Relay's options: one `RELAY` dict in Django settings, merged over these defaults.

Durations are seconds (floats allowed). Unknown keys are an error, so a typo never silently
falls back to a default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed


@dataclass(frozen=True)
class RelaySettings:
    # Queue a job goes to when neither the task nor the caller names one.
    DEFAULT_QUEUE: str = "default"
    # Attempts before a failing job is dead-lettered; None retries forever.
    DEFAULT_MAX_ATTEMPTS: int | None = 10
    # Retry delay for attempt n is min(cap, base * factor ** (n - 1)), then +/- jitter * delay.
    DEFAULT_BACKOFF_BASE: float = 1.0
    DEFAULT_BACKOFF_FACTOR: float = 2.0
    DEFAULT_BACKOFF_CAP: float = 3600.0
    DEFAULT_BACKOFF_JITTER: float = 0.1
    # Time limit of one attempt; None means "only the lease bounds it".
    DEFAULT_TIMEOUT: float | None = None
    # Lease length: a delivery not acknowledged (or extended) within it is redelivered.
    DEFAULT_ACK_TIMEOUT: float = 300.0
    # Handler processes per worker when --concurrency is not given (0 = number of CPUs).
    WORKER_CONCURRENCY: int = 0
    # Most jobs a worker claims ahead of free handlers, so that claims and acks of short jobs
    # go in batches. The number held adapts to how long recent jobs took (about 50 ms of work;
    # none for slow jobs); 0 claims only for free handlers. A job held longer than
    # PREFETCH_HOLD (its handlers all busy) is handed back unstarted for other workers.
    WORKER_PREFETCH: int = 64
    PREFETCH_HOLD: float = 1.0
    # How often an idle worker looks for due jobs (PostgreSQL workers are also woken at once).
    POLL_INTERVAL: float = 1.0
    # How often a worker records that it is alive and checks its jobs for cancel requests.
    HEARTBEAT_INTERVAL: float = 5.0
    # A worker silent for this long is presumed dead and its jobs are redelivered.
    WORKER_STALE_AFTER: float = 30.0
    # How often each worker looks for expired leases and dead workers' jobs.
    RESCUE_INTERVAL: float = 5.0
    # On SIGTERM, how long in-flight jobs may run before they are stopped and released.
    SHUTDOWN_GRACE: float = 30.0
    # After a handler is told to stop (timeout, cancel, lease), how long before SIGKILL.
    KILL_GRACE: float = 5.0
    # Longest traceback and error message kept per attempt.
    MAX_TRACEBACK_CHARS: int = 32_000
    MAX_ERROR_MESSAGE_CHARS: int = 4_000
    # relay_scheduler: seconds between ticks, and how long a silent leader keeps the lead.
    SCHEDULER_INTERVAL: float = 10.0
    SCHEDULER_LEASE: float = 30.0
    # Where `relay_workflows` and `make run` read workflow files from (relative to BASE_DIR).
    WORKFLOWS_DIR: str = "workflows"
    # Argument keys whose values are masked in the dashboard, the admin, the audit log and
    # logs: a key matches when it contains one of these (case-insensitive).
    SECRET_KEYS: tuple[str, ...] = (
        "password", "passwd", "secret", "token", "api_key", "apikey", "authorization",
        "credential", "private_key", "access_key", "cookie", "session",
    )
    # Dashboard bulk actions: up to this many jobs run at once in the request; more are handed
    # to a background job that works through them BULK_BATCH at a time, BULK_PAUSE s apart.
    BULK_INLINE_LIMIT: int = 500
    BULK_BATCH: int = 200
    BULK_PAUSE: float = 0.2


@lru_cache(maxsize=1)
def relay_settings() -> RelaySettings:
    configured: dict[str, Any] = dict(getattr(settings, "RELAY", {}) or {})
    known = {f.name for f in fields(RelaySettings)}
    unknown = sorted(set(configured) - known)
    if unknown:
        raise ImproperlyConfigured(
            f"Unknown RELAY setting(s): {', '.join(unknown)}. Known: {', '.join(sorted(known))}"
        )
    values = replace(RelaySettings(), **configured)
    _validate(values)
    return values


def _validate(values: RelaySettings) -> None:
    positive = [
        "POLL_INTERVAL",
        "HEARTBEAT_INTERVAL",
        "WORKER_STALE_AFTER",
        "RESCUE_INTERVAL",
        "DEFAULT_ACK_TIMEOUT",
        "DEFAULT_BACKOFF_FACTOR",
        "SCHEDULER_INTERVAL",
        "SCHEDULER_LEASE",
    ]
    for name in positive:
        if not getattr(values, name) > 0:
            raise ImproperlyConfigured(f"RELAY[{name!r}] must be > 0")
    if values.WORKER_STALE_AFTER <= values.HEARTBEAT_INTERVAL:
        raise ImproperlyConfigured(
            "RELAY['WORKER_STALE_AFTER'] must be longer than RELAY['HEARTBEAT_INTERVAL'], "
            "or every worker would be presumed dead between two heartbeats"
        )
    if values.DEFAULT_MAX_ATTEMPTS is not None and values.DEFAULT_MAX_ATTEMPTS < 1:
        raise ImproperlyConfigured("RELAY['DEFAULT_MAX_ATTEMPTS'] must be >= 1 or None")


def default_concurrency() -> int:
    configured = relay_settings().WORKER_CONCURRENCY
    return configured if configured > 0 else (os.cpu_count() or 1)


def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting == "RELAY":
        relay_settings.cache_clear()


setting_changed.connect(_reset)
