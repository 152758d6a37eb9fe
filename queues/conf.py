"""Relay's options: one `RELAY` dict in Django settings, merged over these defaults.

Durations are seconds (floats allowed). Unknown keys are an error, so a typo never silently
falls back to a default.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, fields, replace
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
    # /metrics (Prometheus). With METRICS_TOKEN set (16+ characters), a scrape must send
    # "Authorization: Bearer <token>". METRICS_ALLOWED_IPS lists the addresses or networks
    # ("10.0.0.0/8") that may scrape; None means: this machine only (loopback, and nothing
    # relayed by a proxy) while no token is set, any address once one is. The rendered output
    # is reused for METRICS_CACHE_SECONDS (0: every scrape reads the database).
    METRICS_TOKEN: str | None = None
    METRICS_ALLOWED_IPS: tuple[str, ...] | None = None
    METRICS_CACHE_SECONDS: float = 5.0
    # Absolute address of the web app (e.g. "https://relay.example.com"), for the dashboard
    # links in alerts. Empty: alerts carry site-relative links ("/dashboard/jobs/7/").
    BASE_URL: str = ""
    # Alerts (scheduler/alerts), raised by the leading relay_scheduler. Channels declared here
    # add to those in the admin: dicts {"name", "kind": "webhook"|"slack"|"email", "url" or
    # "recipients": [...], "events": [...] (missing or empty: every event)}.
    ALERT_CHANNELS: tuple[dict[str, Any], ...] = ()
    # The first event of a kind and subject (a task in a queue, a workflow, a queue) alerts at
    # once; more within ALERT_WINDOW s are summarised in one alert when the window ends. At
    # most ALERT_MAX_PER_WINDOW subjects of one kind alert per window; the rest share one summary.
    ALERT_WINDOW: float = 60.0
    ALERT_MAX_PER_WINDOW: int = 10
    # A condition that still holds (backlog, no worker, stalled scheduler) is announced again
    # this often (None: once, and once more when it clears).
    ALERT_REPEAT: float | None = 3600.0
    # Thresholds in seconds; None turns that alert off. A queue's oldest due job has waited
    # longer than ALERT_QUEUE_AGE (per queue: ALERT_QUEUE_AGE_BY_QUEUE = {"bulk": 3600});
    # due jobs have waited ALERT_NO_WORKER_AFTER with no live worker serving their queue; the
    # scheduler's last tick is older than ALERT_SCHEDULER_STALL (relay_watchdog checks this).
    ALERT_QUEUE_AGE: float | None = 300.0
    ALERT_QUEUE_AGE_BY_QUEUE: dict[str, float | None] = field(default_factory=dict)
    ALERT_NO_WORKER_AFTER: float | None = 60.0
    ALERT_SCHEDULER_STALL: float | None = 120.0
    # How often the backlog and worker checks run (they read the waiting jobs' queues).
    ALERT_CHECK_INTERVAL: float = 30.0
    # Delivery: HTTP timeout per try; retry n waits min(cap, base * 2 ** (n - 1)); after
    # ALERT_MAX_ATTEMPTS tries the delivery is given up and recorded as failed.
    ALERT_HTTP_TIMEOUT: float = 5.0
    ALERT_RETRY_BASE: float = 5.0
    ALERT_RETRY_CAP: float = 600.0
    ALERT_MAX_ATTEMPTS: int = 8


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
    _validate_metrics(values)
    for name in ("ALERT_WINDOW", "ALERT_CHECK_INTERVAL", "ALERT_HTTP_TIMEOUT",
                 "ALERT_RETRY_BASE", "ALERT_RETRY_CAP", "ALERT_MAX_PER_WINDOW",
                 "ALERT_MAX_ATTEMPTS"):
        if not getattr(values, name) > 0:
            raise ImproperlyConfigured(f"RELAY[{name!r}] must be > 0")
    thresholds = {"ALERT_REPEAT": values.ALERT_REPEAT, "ALERT_QUEUE_AGE": values.ALERT_QUEUE_AGE,
                  "ALERT_NO_WORKER_AFTER": values.ALERT_NO_WORKER_AFTER,
                  "ALERT_SCHEDULER_STALL": values.ALERT_SCHEDULER_STALL}
    thresholds.update({f"ALERT_QUEUE_AGE_BY_QUEUE[{q!r}]": v
                       for q, v in dict(values.ALERT_QUEUE_AGE_BY_QUEUE).items()})
    for name, value in thresholds.items():
        if value is not None and not (isinstance(value, (int, float)) and value > 0):
            raise ImproperlyConfigured(f"RELAY[{name!r}] must be a number of seconds > 0 or None")


def _validate_metrics(values: RelaySettings) -> None:
    token = values.METRICS_TOKEN
    if token is not None and (not isinstance(token, str) or len(token.strip()) < 16):
        raise ImproperlyConfigured("RELAY['METRICS_TOKEN'] must be a string of 16 or more "
                                   "characters, or None")
    allowed = values.METRICS_ALLOWED_IPS
    if allowed is not None:
        if isinstance(allowed, str):
            raise ImproperlyConfigured("RELAY['METRICS_ALLOWED_IPS'] must be a list of "
                                       "addresses or networks, not a string")
        for entry in allowed:
            try:
                ipaddress.ip_network(str(entry).strip(), strict=False)
            except ValueError:
                raise ImproperlyConfigured(
                    f"RELAY['METRICS_ALLOWED_IPS']: {entry!r} is not an address or network"
                ) from None
    if not values.METRICS_CACHE_SECONDS >= 0:
        raise ImproperlyConfigured("RELAY['METRICS_CACHE_SECONDS'] must be >= 0")


def default_concurrency() -> int:
    configured = relay_settings().WORKER_CONCURRENCY
    return configured if configured > 0 else (os.cpu_count() or 1)


def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting == "RELAY":
        relay_settings.cache_clear()


setting_changed.connect(_reset)
