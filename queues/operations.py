"""The public Python API: enqueue, enqueue_many, cancel, retry, discard, redeliver_expired.

Enqueue writes through the caller's database connection, so inside `transaction.atomic()` the
job commits or rolls back with the caller's own writes, and no worker sees it before commit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models.functions import Now

from queues import store
from queues.backoff import Backoff
from queues.conf import relay_settings
from queues.exceptions import (
    InvalidOption,
    InvalidPayload,
    InvalidQueueName,
    InvalidSchedule,
)
from queues.models import ACTIVE_STATES, Job
from queues.registry import PRIORITY_RANGE, QUEUE_NAME_RE, UNSET, Task, registry
from queues.store.clock import NowPlus

TaskRef = Task | str | Callable[..., Any]


@dataclass(frozen=True)
class Call:
    """One job of a bulk enqueue: positional and keyword arguments."""

    args: Sequence[Any] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def enqueue(
    task: TaskRef,
    *args: Any,
    queue: str | None = None,
    priority: int | None = None,
    run_at: datetime | None = None,
    delay: float | timedelta | None = None,
    dedup_key: str | None = None,
    max_attempts: int | None = UNSET,
    timeout: float | None = UNSET,
    ack_timeout: float | None = UNSET,
    tags: Sequence[str] = (),
    meta: dict[str, Any] | None = None,
    backoff: Backoff | dict[str, float] | None = None,
    **kwargs: Any,
) -> Job:
    """Enqueue one job and return it.

    With `dedup_key`, while a job with that key is active (scheduled, running or failed and
    waiting to retry) the existing job is returned instead, with `job.deduplicated = True`.
    Raises an `EnqueueError` subclass (nothing is written) for an unknown task, arguments that
    are not JSON, a bad queue name, a negative delay or an out-of-range option.
    """
    definition = registry.resolve(task)
    job = _build(definition, args, kwargs, queue=queue, priority=priority, run_at=run_at,
                 delay=delay, dedup_key=dedup_key, max_attempts=max_attempts, timeout=timeout,
                 ack_timeout=ack_timeout, tags=tags, meta=meta, backoff=backoff)
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
    if dedup_key is None:
        return store.insert_job(job, delay=seconds)
    return _insert_deduplicated(job, seconds)


def enqueue_many(task: TaskRef, calls: Iterable[Call | Sequence[Any] | dict[str, Any]], *,
                 batch_size: int = 5000, **options: Any) -> JobBatch:
    """Enqueue many jobs of one task in bulk (no dedup keys), atomically. `calls` items are
    `Call`s, tuples of positional arguments, or dicts of keyword arguments. Every item is
    validated before anything is written. Returns the jobs as a sequence (ids at once, `Job`
    objects built when accessed)."""
    if "dedup_key" in options:
        raise InvalidOption("enqueue_many does not take dedup_key; use enqueue() per job")
    definition = registry.resolve(task)
    template = _build(definition, (), {}, dedup_key=None, **options)
    rows: list[tuple[list, dict]] = []
    for call in calls:
        if isinstance(call, Call):
            rows.append((list(call.args), dict(call.kwargs)))
        elif isinstance(call, dict):
            rows.append(([], dict(call)))
        elif isinstance(call, (list, tuple)):
            rows.append((list(call), {}))
        else:
            raise InvalidPayload(
                f"enqueue_many items must be Call, tuple or dict, not {type(call).__name__}"
            )
    try:
        json.dumps(rows, allow_nan=False)
    except (TypeError, ValueError):
        for index, (args, kwargs) in enumerate(rows):  # name the first bad item
            _check_json(f"arguments of item {index}", args)
            _check_json(f"keyword arguments of item {index}", kwargs)
        raise
    delay = options.get("delay")
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
    with transaction.atomic():
        ids = store.insert_jobs(template, rows, delay=seconds, batch_size=batch_size)
    return JobBatch(ids, template, rows)


class JobBatch(Sequence[Job]):
    """The jobs enqueue_many created, in order: `ids` at once, `Job` objects on access (rows
    as inserted; the due time is the database's, so it is left unset here)."""

    def __init__(self, ids: list[int], template: Job, rows: list[tuple[list, dict]]) -> None:
        self.ids = ids
        self._template = template
        self._rows = rows

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        args, kwargs = self._rows[index]
        t = self._template
        return Job(id=self.ids[index], task=t.task, queue=t.queue, priority=t.priority,
                   args=args, kwargs=kwargs, tags=list(t.tags), meta=dict(t.meta),
                   max_attempts=t.max_attempts, backoff=dict(t.backoff), timeout=t.timeout,
                   ack_timeout=t.ack_timeout)

    def __repr__(self) -> str:
        return f"<JobBatch of {len(self)} job(s)>"


def cancel(job: Job | int) -> Job:
    """Cancel a waiting job now, or ask a running job's worker to stop it (it ends `cancelled`)."""
    return store.cancel(_pk(job))


def retry(job: Job | int, *, user: Any = None, note: str = "", args: Sequence[Any] | None = None,
          kwargs: dict[str, Any] | None = None) -> Job:
    """Run a failed job now, or put a dead-lettered or cancelled job back in its queue.
    With `args` and/or `kwargs` the job runs with these arguments instead (a fixed payload)."""
    if args is not None:
        if isinstance(args, (str, bytes, dict)) or not isinstance(args, Sequence):
            raise InvalidPayload("args must be a list")
        args = list(args)
        _check_json("arguments", args)
    if kwargs is not None:
        if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise InvalidPayload("kwargs must be an object with string keys")
        _check_json("keyword arguments", kwargs)
    return store.retry(_pk(job), user=user, note=note, args=args, kwargs=kwargs)


def pause_queue(queue: str, *, by: str = "", reason: str = "") -> bool:
    """Pause a queue: workers claim none of its jobs until `resume_queue`. Returns False if it
    was already paused."""
    if not isinstance(queue, str) or not QUEUE_NAME_RE.match(queue):
        raise InvalidQueueName(f"Invalid queue name {queue!r}")
    return store.pause_queue(queue, by=by, reason=reason)


def resume_queue(queue: str) -> bool:
    """Resume a paused queue. Returns False if it was not paused."""
    return store.resume_queue(queue)


def paused_queues() -> dict[str, Any]:
    """Paused queue names and their QueuePause rows."""
    from queues.models import QueuePause

    return {p.queue: p for p in QueuePause.objects.all()}


def discard(job: Job | int, *, user: Any = None, note: str = "") -> Job:
    """Resolve a job's dead letter as given up."""
    return store.discard(_pk(job), user=user, note=note)


def redeliver_expired() -> int:
    """Redeliver jobs whose lease ran out or whose worker went silent (workers do this too;
    the scheduler calls it as a second line). Returns how many jobs were redelivered."""
    return store.rescue(stale_after=relay_settings().WORKER_STALE_AFTER)


def _pk(job: Job | int) -> int:
    return job.pk if isinstance(job, Job) else int(job)


def _insert_deduplicated(job: Job, delay: float | None) -> Job:
    # The partial unique index on active dedup keys decides; on PostgreSQL a concurrent insert
    # of the same key waits for the first transaction and then fails or proceeds, so a caller
    # is never handed a job that another transaction might still roll back.
    for _ in range(10):
        try:
            with transaction.atomic():
                return store.insert_job(job, delay=delay)
        except IntegrityError:
            job.pk = None
            existing = Job.objects.filter(dedup_key=job.dedup_key, state__in=ACTIVE_STATES).first()
            if existing is not None:
                existing.deduplicated = True
                return existing
    raise IntegrityError(f"could not enqueue with dedup key {job.dedup_key!r}")


def _build(definition: Task, args: Sequence[Any], kwargs: dict[str, Any], *,
           queue: str | None = None, priority: int | None = None,
           run_at: datetime | None = None, delay: float | timedelta | None = None,
           dedup_key: str | None = None, max_attempts: int | None = UNSET,
           timeout: float | None = UNSET, ack_timeout: float | None = UNSET,
           tags: Sequence[str] = (), meta: dict[str, Any] | None = None,
           backoff: Backoff | dict[str, float] | None = None) -> Job:
    conf = relay_settings()
    queue_name = queue if queue is not None else (definition.queue or conf.DEFAULT_QUEUE)
    if not isinstance(queue_name, str) or not QUEUE_NAME_RE.match(queue_name):
        raise InvalidQueueName(
            f"Invalid queue name {queue_name!r}: 1-100 letters, digits and _ . : - "
            f"starting with a letter or digit"
        )
    prio = definition.priority if priority is None else priority
    if not isinstance(prio, int) or isinstance(prio, bool) or prio not in PRIORITY_RANGE:
        raise InvalidOption(f"priority must be an integer from -100 to 100, not {prio!r}")

    attempts = definition.max_attempts if max_attempts is UNSET else max_attempts
    if attempts is UNSET:
        attempts = conf.DEFAULT_MAX_ATTEMPTS
    if attempts is not None and (not isinstance(attempts, int) or isinstance(attempts, bool)
                                 or attempts < 1):
        raise InvalidOption(f"max_attempts must be an integer >= 1 or None, not {attempts!r}")

    limit = definition.timeout if timeout is UNSET else timeout
    if limit is UNSET:
        limit = conf.DEFAULT_TIMEOUT
    lease = definition.ack_timeout if ack_timeout is UNSET else ack_timeout
    if lease is UNSET or lease is None:
        lease = conf.DEFAULT_ACK_TIMEOUT
    for label, value in (("timeout", limit), ("ack_timeout", lease)):
        if value is not None and not _positive_number(value):
            raise InvalidOption(f"{label} must be a positive number of seconds, not {value!r}")

    if dedup_key is not None and (not isinstance(dedup_key, str) or not 0 < len(dedup_key) <= 255):
        raise InvalidOption("dedup_key must be a non-empty string of at most 255 characters")
    if isinstance(tags, str) or not all(isinstance(t, str) and 0 < len(t) <= 100 for t in tags):
        raise InvalidOption("tags must be a list of non-empty strings (at most 100 characters)")
    if meta is not None and not isinstance(meta, dict):
        raise InvalidOption("meta must be a dict")

    _check_json("arguments", list(args))
    _check_json("keyword arguments", kwargs)
    _check_json("meta", meta or {})
    default_backoff = definition.backoff or Backoff(
        base=conf.DEFAULT_BACKOFF_BASE,
        factor=conf.DEFAULT_BACKOFF_FACTOR,
        cap=conf.DEFAULT_BACKOFF_CAP,
        jitter=conf.DEFAULT_BACKOFF_JITTER,
    )
    if isinstance(backoff, dict):
        try:
            backoff = Backoff(**{**default_backoff.as_dict(), **backoff})
        except (TypeError, ValueError) as exc:
            raise InvalidOption(f"invalid backoff {backoff!r}: {exc}") from None
    elif backoff is not None and not isinstance(backoff, Backoff):
        raise InvalidOption("backoff must be a Backoff or a dict of base, factor, cap, jitter")
    backoff = backoff or default_backoff
    job = Job(
        task=definition.name,
        queue=queue_name,
        priority=prio,
        args=list(args),
        kwargs=dict(kwargs),
        tags=list(tags),
        meta=dict(meta or {}),
        max_attempts=attempts,
        backoff=backoff.as_dict(),
        timeout=limit,
        ack_timeout=lease,
        dedup_key=dedup_key,
    )
    due = _due(run_at, delay)
    if due is not None:
        job.run_at = due
    return job


def _due(run_at: datetime | None, delay: float | timedelta | None) -> Any:
    """run_at for the row: the database's now (the default), now + delay, or an exact time."""
    if run_at is not None and delay is not None:
        raise InvalidSchedule("give run_at or delay, not both")
    if run_at is not None:
        if not isinstance(run_at, datetime):
            raise InvalidSchedule(f"run_at must be a datetime, not {type(run_at).__name__}")
        if run_at.tzinfo is None or run_at.utcoffset() is None:
            raise InvalidSchedule("run_at must be timezone-aware (naive times are ambiguous)")
        return run_at
    if delay is None:
        return None
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(
        seconds
    ):
        raise InvalidSchedule(f"delay must be a number of seconds or a timedelta, not {delay!r}")
    if seconds < 0:
        raise InvalidSchedule(f"delay must be >= 0, not {seconds}")
    return NowPlus(seconds) if seconds else Now()


def _positive_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def _check_json(label: str, value: Any) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidPayload(f"Job {label} must be JSON-serializable: {exc}") from None
