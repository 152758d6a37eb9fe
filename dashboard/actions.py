"""Every operator action, in one place: the dashboard, the admin and the API call these.

Each function checks the actor's permission for the objects it touches (PermissionDenied
otherwise), changes state only through `queues` / `scheduler` public functions, and writes
exactly one AuditEntry in the same transaction, so the record and the change commit together.
An action that changes nothing (InvalidTransition, WorkflowError ...) raises ActionError and
writes no entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Max

from dashboard.access import Access
from dashboard.masking import mask, mask_filter, unmask
from dashboard.models import AuditEntry, BulkOperation


class ActionError(Exception):
    """The action was refused by the engine (wrong state, bad input); nothing changed.
    `field` names the input at fault, when one is (the API answers with it)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class Actor:
    """Who acts, from where: built from a request (see `actor_from_request`)."""

    user: Any
    access: Access
    ip: str | None = None
    source: str = "dashboard"

    @property
    def name(self) -> str:
        return self.user.get_username() if getattr(self.user, "pk", None) else "anonymous"


def actor_from_request(request: Any, source: str = "dashboard") -> Actor:
    from dashboard.access import access_for

    return Actor(request.user, access_for(request), client_ip(request), source)


def client_ip(request: Any) -> str | None:
    """REMOTE_ADDR; behind a proxy, configure it (e.g. gunicorn --forwarded-allow-ips) so the
    address is the client's."""
    return request.META.get("REMOTE_ADDR") or None


def record(actor: Actor, action: str, object_type: str, ids: list[Any], *, reason: str = "",
           details: dict[str, Any] | None = None, count: int | None = None) -> AuditEntry:
    details = dict(details or {})
    if "filter" in details:  # arg=args.api_key=... in a bulk filter
        details["filter"] = mask_filter(details["filter"])
    return AuditEntry.objects.create(
        actor_id=getattr(actor.user, "pk", None), actor=actor.name, action=action,
        object_type=object_type, object_ids=[str(i) for i in ids][:1000],
        count=len(ids) if count is None else count, reason=reason.strip()[:2000],
        ip=actor.ip, source=actor.source, details=mask(details or {}),
    )


# -- jobs ---------------------------------------------------------------------------------------

def _job(job_id: int):
    from queues.models import Job

    try:
        return Job.objects.get(pk=job_id)
    except (Job.DoesNotExist, ValueError, TypeError):
        raise ActionError(f"Job #{job_id} does not exist") from None


def _check_job(actor: Actor, action: str, job: Any) -> None:
    if not actor.access.can_job(action, job):
        raise PermissionDenied(f"You may not {action} job #{job.pk} (queue {job.queue})")


def cancel_job(actor: Actor, job_id: int, reason: str = ""):
    from queues import InvalidTransition, cancel

    job = _job(job_id)
    _check_job(actor, "cancel", job)
    with transaction.atomic():
        try:
            job = cancel(job.pk)
        except InvalidTransition as exc:
            raise ActionError(str(exc)) from None
        record(actor, "job.cancel", "job", [job.pk], reason=reason,
               details={"task": job.task, "queue": job.queue, "state": job.state})
    return job


def retry_job(actor: Actor, job_id: int, reason: str = "", *, args: list | None = None,
              kwargs: dict | None = None):
    """Retry a failed, dead-lettered or cancelled job; with args/kwargs, with those (values
    left masked keep their stored secret)."""
    from queues import EnqueueError, InvalidTransition, retry

    job = _job(job_id)
    _check_job(actor, "retry", job)
    details: dict[str, Any] = {"task": job.task, "queue": job.queue, "from_state": job.state}
    if args is not None:
        args = unmask(args, job.args)
    if kwargs is not None:
        kwargs = unmask(kwargs, job.kwargs)
    if (args is not None and args != job.args) or (kwargs is not None and kwargs != job.kwargs):
        details["old_arguments"] = {"args": job.args, "kwargs": job.kwargs}
        details["new_arguments"] = {"args": job.args if args is None else args,
                                    "kwargs": job.kwargs if kwargs is None else kwargs}
    with transaction.atomic():
        try:
            job = retry(job.pk, user=actor.user, note=reason, args=args, kwargs=kwargs)
        except (InvalidTransition, EnqueueError) as exc:
            raise ActionError(str(exc)) from None
        action = "job.edit_retry" if "new_arguments" in details else "job.retry"
        record(actor, action, "job", [job.pk], reason=reason, details=details)
    return job


def discard_job(actor: Actor, job_id: int, reason: str = ""):
    from queues import InvalidTransition, discard

    job = _job(job_id)
    _check_job(actor, "discard", job)
    with transaction.atomic():
        try:
            job = discard(job.pk, user=actor.user, note=reason)
        except InvalidTransition as exc:
            raise ActionError(str(exc)) from None
        record(actor, "job.discard", "job", [job.pk], reason=reason,
               details={"task": job.task, "queue": job.queue})
    return job


def rerun_job(actor: Actor, job_id: int, reason: str = ""):
    """Run a finished job again as a new job with the same task, arguments and options."""
    from queues import EnqueueError, enqueue

    job = _job(job_id)
    _check_job(actor, "rerun", job)
    if not job.is_finished:
        raise ActionError(f"Job #{job.pk} is {job.state}; only finished jobs can be rerun")
    with transaction.atomic():
        try:
            new = enqueue(job.task, *job.args, queue=job.queue, priority=job.priority,
                          max_attempts=job.max_attempts, timeout=job.timeout,
                          ack_timeout=job.ack_timeout, tags=job.tags, backoff=job.backoff,
                          meta={**{k: v for k, v in job.meta.items()
                                   if k not in ("workflow_run", "step")},
                                "rerun_of": job.pk},
                          **job.kwargs)
        except EnqueueError as exc:
            raise ActionError(str(exc)) from None
        record(actor, "job.rerun", "job", [job.pk, new.pk], reason=reason,
               details={"task": job.task, "queue": job.queue, "new_job": new.pk}, count=1)
    return new


# Job meta keys other apps set and read (a step's run, a rerun's origin ...): a caller may not
# forge them, or a job could pose as a workflow step.
RESERVED_META = ("workflow", "workflow_run", "step", "schedule", "rerun_of", "triggered_by")


def enqueue_task(actor: Actor, task: str, kwargs: dict[str, Any], *, queue: str | None = None,
                 reason: str = "", args: list[Any] | None = None,
                 options: dict[str, Any] | None = None):
    """Trigger a registered task with arguments (validated by the queue). `options` are
    queues.enqueue's other options (priority, run_at, delay, dedup_key, max_attempts, timeout,
    ack_timeout, tags, meta, backoff). When a dedup key matches an active job, that job is
    returned (`job.deduplicated`) and, nothing having changed, no entry is written."""
    from queues import EnqueueError, enqueue
    from queues.registry import registry

    if task not in registry:
        raise ActionError(f"No task named {task!r} is registered", field="task")
    actor.access.require("trigger", queue=queue or _task_queue(task))
    if not isinstance(kwargs, dict):
        raise ActionError("Task input must be a JSON object of keyword arguments",
                          field="kwargs")
    options = dict(options or {})
    meta = options.pop("meta", None) or {}
    forged = sorted(set(meta) & set(RESERVED_META))
    if forged:
        raise ActionError(f"meta keys {', '.join(forged)} are set by Relay itself",
                          field="meta")
    with transaction.atomic():
        try:
            job = enqueue(task, *(args or []), queue=queue or None,
                          meta={**meta, "triggered_by": actor.name}, **options, **kwargs)
        except EnqueueError as exc:
            raise ActionError(str(exc), field=_enqueue_field(exc)) from None
        except TypeError as exc:  # an argument named like an option
            raise ActionError(str(exc), field="kwargs") from None
        if not job.deduplicated:
            details: dict[str, Any] = {"task": task, "queue": job.queue, "kwargs": kwargs}
            if args:
                details["args"] = args
            if options or meta:
                details["options"] = {
                    **{k: v.isoformat() if isinstance(v, datetime) else v
                       for k, v in options.items()},
                    **({"meta": meta} if meta else {})}
            record(actor, "task.enqueue", "job", [job.pk], reason=reason, details=details)
    return job


def _enqueue_field(exc: Exception) -> str | None:
    """The enqueue option an EnqueueError is about, from its type or its message."""
    from queues.exceptions import InvalidPayload, InvalidQueueName, InvalidSchedule, UnknownTask

    if isinstance(exc, UnknownTask):
        return "task"
    if isinstance(exc, InvalidQueueName):
        return "queue"
    message = str(exc)
    if isinstance(exc, InvalidSchedule):
        return "run_at" if "run_at" in message else "delay"
    if isinstance(exc, InvalidPayload):
        return ("kwargs" if "keyword" in message else "meta" if "meta" in message
                else "args")
    for name in ("max_attempts", "ack_timeout", "timeout", "priority", "dedup_key", "tags",
                 "meta", "backoff"):
        if name in message:
            return name
    return None


# -- queues -------------------------------------------------------------------------------------

def pause_queue(actor: Actor, queue: str, reason: str = "") -> None:
    from queues import EnqueueError
    from queues import pause_queue as pause

    actor.access.require("pause", queue=queue)
    with transaction.atomic():
        try:
            changed = pause(queue, by=actor.name, reason=reason)
        except EnqueueError as exc:
            raise ActionError(str(exc)) from None
        if not changed:
            raise ActionError(f"Queue {queue} is already paused")
        record(actor, "queue.pause", "queue", [queue], reason=reason)


def resume_queue(actor: Actor, queue: str, reason: str = "") -> None:
    from queues import resume_queue as resume

    actor.access.require("pause", queue=queue)
    with transaction.atomic():
        if not resume(queue):
            raise ActionError(f"Queue {queue} is not paused")
        record(actor, "queue.resume", "queue", [queue], reason=reason)


# -- workflow runs ------------------------------------------------------------------------------

def _run(run_id: int):
    from scheduler.models import WorkflowRun

    try:
        return WorkflowRun.objects.select_related("definition").get(pk=run_id)
    except (WorkflowRun.DoesNotExist, ValueError, TypeError):
        raise ActionError(f"Run #{run_id} does not exist") from None


def cancel_run(actor: Actor, run_id: int, reason: str = ""):
    from scheduler import engine

    run = _run(run_id)
    actor.access.require("cancel", workflow=run.definition.name)
    with transaction.atomic():
        try:
            run = engine.cancel_run(run.pk, by=actor.name)
        except engine.WorkflowError as exc:
            raise ActionError(str(exc)) from None
        record(actor, "run.cancel", "workflow_run", [run.pk], reason=reason,
               details={"workflow": run.definition.name})
    return run


def rerun_run(actor: Actor, run_id: int, reason: str = ""):
    from scheduler import engine

    run = _run(run_id)
    actor.access.require("rerun", workflow=run.definition.name)
    with transaction.atomic():
        try:
            run = engine.rerun(run.pk, by=actor.name)
        except engine.WorkflowError as exc:
            raise ActionError(str(exc)) from None
        record(actor, "run.rerun", "workflow_run", [run.pk], reason=reason,
               details={"workflow": run.definition.name, "reruns": run.reruns})
    return run


def start_workflow(actor: Actor, workflow: str, input: dict[str, Any], reason: str = ""):
    from scheduler import engine

    actor.access.require("trigger", workflow=workflow)
    with transaction.atomic():
        try:
            run = engine.start_run(workflow, input, triggered_by=actor.name)
        except engine.WorkflowError as exc:
            field = ("workflow" if isinstance(exc, engine.UnknownWorkflow)
                     else "input" if isinstance(exc, engine.InvalidInput) else None)
            raise ActionError(str(exc), field=field) from None
        record(actor, "workflow.start", "workflow_run", [run.pk], reason=reason,
               details={"workflow": workflow, "version": run.definition.version,
                        "input": input})
    return run


# -- schedules ----------------------------------------------------------------------------------

def _schedule(schedule_id: int):
    from scheduler.models import Schedule

    try:
        return Schedule.objects.get(pk=schedule_id)
    except (Schedule.DoesNotExist, ValueError, TypeError):
        raise ActionError(f"Schedule #{schedule_id} does not exist") from None


def _schedule_scope(schedule: Any) -> dict[str, str | None]:
    if schedule.target_kind == "workflow":
        return {"workflow": schedule.target}
    return {"queue": _task_queue(schedule.target)}


def _task_queue(name: str) -> str:
    """The queue a task's jobs go to when the caller names none."""
    from queues.conf import relay_settings
    from queues.registry import registry

    task = registry.get(name) if name in registry else None
    return (task and task.queue) or relay_settings().DEFAULT_QUEUE


def pause_schedule(actor: Actor, schedule_id: int, reason: str = ""):
    from scheduler.models import Schedule

    schedule = _schedule(schedule_id)
    actor.access.require("pause", **_schedule_scope(schedule))
    with transaction.atomic():
        if not Schedule.objects.filter(pk=schedule.pk, enabled=True).update(enabled=False):
            raise ActionError(f"Schedule {schedule.name} is already paused")
        record(actor, "schedule.pause", "schedule", [schedule.pk], reason=reason,
               details={"name": schedule.name})
    schedule.refresh_from_db()
    return schedule


def resume_schedule(actor: Actor, schedule_id: int, reason: str = ""):
    from scheduler import firing
    from scheduler.models import Schedule

    schedule = _schedule(schedule_id)
    actor.access.require("pause", **_schedule_scope(schedule))
    with transaction.atomic():
        next_at = firing.next_due(schedule, firing.now())
        if not Schedule.objects.filter(pk=schedule.pk, enabled=False).update(
                enabled=True, next_fire_at=next_at):
            raise ActionError(f"Schedule {schedule.name} is not paused")
        record(actor, "schedule.resume", "schedule", [schedule.pk], reason=reason,
               details={"name": schedule.name, "next_fire_at": next_at.isoformat()})
    schedule.refresh_from_db()
    return schedule


def trigger_schedule(actor: Actor, schedule_id: int, reason: str = ""):
    from queues import EnqueueError
    from scheduler import engine, firing

    schedule = _schedule(schedule_id)
    actor.access.require("trigger", **_schedule_scope(schedule))
    with transaction.atomic():
        try:
            started = firing.trigger(schedule, by=actor.name)
        except (engine.WorkflowError, EnqueueError) as exc:
            raise ActionError(str(exc)) from None
        kind = "workflow_run" if schedule.target_kind == "workflow" else "job"
        record(actor, "schedule.trigger", "schedule", [schedule.pk], reason=reason,
               details={"name": schedule.name, kind: started.pk})
    return started


# -- bulk ---------------------------------------------------------------------------------------

BULK_ACTIONS = {"retry": retry_job, "discard": discard_job, "cancel": cancel_job}


@dataclass
class BulkResult:
    done: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)  # id -> why
    operation: BulkOperation | None = None  # set when handed to the background


def bulk_jobs(actor: Actor, action: str, *, ids: list[int] | None = None,
              job_filter: Any = None, reason: str = "") -> BulkResult:
    """Apply `action` to the selected ids, or to every job matching `job_filter` (a
    dashboard.filters.JobFilter). Large filter matches run in the background at a bounded
    rate (see RELAY["BULK_*"]). One audit entry either way."""
    from queues.conf import relay_settings
    from queues.models import Job

    if action not in BULK_ACTIONS:
        raise ActionError(f"Unknown bulk action {action!r}")
    if not actor.access.can_any(action):
        raise PermissionDenied(f"You may not {action}")
    if ids is not None:
        jobs = list(actor.access.jobs(Job.objects.filter(pk__in=ids)).order_by("id"))
        missing = set(ids) - {j.pk for j in jobs}
        if jobs and not any(actor.access.can_job(action, job) for job in jobs):
            raise PermissionDenied(f"You may not {action} any of the selected jobs")
        result = BulkResult(skipped={i: "not found" for i in missing})
        with transaction.atomic():
            _apply(actor, action, jobs, result, note=reason)
            if result.done:
                record(actor, f"job.bulk_{action}", "job", result.done, reason=reason,
                       details={"selected": len(ids), "skipped": _why(result)})
        return result
    if job_filter is None:
        raise ActionError("Give a selection or a filter")
    qs = actor.access.jobs(job_filter.apply(Job.objects.all()))
    bound = qs.aggregate(top=Max("id"))["top"] or 0
    expected = qs.count()
    conf = relay_settings()
    if expected <= conf.BULK_INLINE_LIMIT:
        result = BulkResult()
        jobs = list(qs.filter(id__lte=bound).order_by("id"))
        select = getattr(job_filter, "select", None)  # see fingerprints.DeadLetterFilter
        with transaction.atomic():
            _apply(actor, action, select(jobs) if select else jobs, result, note=reason)
            if result.done:  # nothing changed: no entry, as for a selection
                record(actor, f"job.bulk_{action}", "job", result.done, reason=reason,
                       details={"filter": job_filter.params(), "matched": expected,
                                "skipped": _why(result)})
        return result
    with transaction.atomic():
        operation = BulkOperation.objects.create(
            action=action, filter=job_filter.frozen_params(), max_job_id=bound, reason=reason,
            created_by=actor.user if getattr(actor.user, "pk", None) else None,
            expected=expected)
        record(actor, f"job.bulk_{action}", "bulk_operation", [operation.pk], reason=reason,
               count=expected, details={"filter": job_filter.params(), "matched": expected,
                                        "background": True})
        from queues import enqueue

        enqueue("relay.bulk_operation", operation.pk)
    return BulkResult(operation=operation)


def _apply(actor: Actor, action: str, jobs: list[Any], result: BulkResult,
           note: str = "") -> None:
    """One job at a time through the single-job path, without per-job audit entries: the
    caller writes one for the whole batch. Each queue function runs in its own atomic block
    (a savepoint here), so a refused job leaves the others' changes intact. `note` goes on
    the resolved dead letters (the operator's reason)."""
    from queues import EnqueueError, InvalidTransition, cancel, discard, retry

    note = note.strip()[:2000] or f"bulk {action}"
    for job in jobs:
        if not actor.access.can_job(action, job):
            result.skipped[job.pk] = "not permitted"
            continue
        try:
            if action == "retry":
                retry(job.pk, user=actor.user, note=note)
            elif action == "discard":
                discard(job.pk, user=actor.user, note=note)
            else:
                cancel(job.pk)
            result.done.append(job.pk)
        except (InvalidTransition, EnqueueError) as exc:
            result.skipped[job.pk] = str(exc)


def _why(result: BulkResult) -> dict[str, str]:
    return {str(k): v for k, v in list(result.skipped.items())[:100]}


def retry_failure_group(actor: Actor, fingerprint: str, reason: str = "",
                        window: str = "7d") -> BulkResult:
    """Retry every open dead letter of a failure group (dashboard.fingerprints) created in
    `window` ("24h", "7d", "30d") that the actor may see. Up to RELAY["BULK_INLINE_LIMIT"]
    at once, more in the background. One audit entry, with the fingerprint in its details."""
    from dashboard import fingerprints
    from queues.conf import relay_settings
    from queues.models import Job

    if not actor.access.can_any("retry"):
        raise PermissionDenied("You may not retry")
    try:
        since = fingerprints.window_start(window)
    except ValueError as exc:
        raise ActionError(str(exc)) from None
    fingerprint = (fingerprint or "").strip().lower()
    members = list(fingerprints.open_dead_letter_jobs(fingerprint, since, access=actor.access))
    if not members:
        raise ActionError("This failure group has no open dead letters in the window "
                          "(already retried or discarded?)")
    ids = [job_id for job_id, *_ in members]
    _, task, error_type, message = members[-1]
    details: dict[str, Any] = {"fingerprint": fingerprint, "task": task,
                               "error_type": error_type,
                               "message": fingerprints.normalise(message),
                               "window": window, "matched": len(ids)}
    if len(ids) <= relay_settings().BULK_INLINE_LIMIT:
        result = BulkResult()
        jobs = list(Job.objects.filter(pk__in=ids).order_by("id"))
        with transaction.atomic():
            _apply(actor, "retry", jobs, result, note=reason)
            if result.done:
                record(actor, "failure_group.retry", "job", result.done, reason=reason,
                       details={**details, "skipped": _why(result)})
        return result
    with transaction.atomic():
        operation = BulkOperation.objects.create(
            action="retry", max_job_id=max(ids), reason=reason, expected=len(ids),
            filter={"dead_letter": "open", "fingerprint": fingerprint,
                    "letters_since": since.isoformat()},
            created_by=actor.user if getattr(actor.user, "pk", None) else None)
        record(actor, "failure_group.retry", "bulk_operation", [operation.pk], reason=reason,
               count=len(ids), details={**details, "background": True})
        from queues import enqueue

        enqueue("relay.bulk_operation", operation.pk)
    return BulkResult(operation=operation)
