"""Why is this job not running? Every reason a waiting job is still waiting, in words.

`why_not_running(job)` looks at what the claim looks at (due time, queue pause, which live
workers serve the queue and have the task registered, claim order) and at the job's workflow
run, and returns one `Reason` per obstacle, most fundamental first. Every query is bounded: the
worker table is small, the backlog count stops at BACKLOG_LIMIT, the rest are key lookups.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from queues.conf import relay_settings
from queues.models import WAITING_STATES, Job, JobState, QueuePause, Worker

BACKLOG_LIMIT = 1000  # jobs ahead counted at most: "at least 1000 jobs ahead"

# Reason codes, in the order they are reported.
DUE_LATER = "due_later"  # run_at is in the future
RETRY_BACKOFF = "retry_backoff"  # an attempt failed; the retry waits out its backoff
QUEUE_PAUSED = "queue_paused"  # a QueuePause row: workers claim none of the queue's jobs
NO_WORKER = "no_worker"  # no live worker serves the queue
TASK_NOT_REGISTERED = "task_not_registered"  # live workers serve the queue, none has the task
WORKFLOW_DEPENDENCIES = "workflow_dependencies"  # its step waits for earlier steps
WORKFLOW_NOT_RUNNING = "workflow_not_running"  # its run is cancelled, finished or not started
QUEUE_BACKLOG = "queue_backlog"  # due and served, but other due jobs are claimed first
WORKERS_BUSY = "workers_busy"  # every handler of the serving workers is taken
DUE_NOW = "due_now"  # nothing holds it back: a worker should claim it within a poll


@dataclass(frozen=True)
class Reason:
    code: str
    message: str
    at: datetime | None = None  # when it ends, where that is known (due time, retry time)


def why_not_running(job: Job, *, now: datetime | None = None) -> list[Reason]:
    """Reasons `job` (scheduled or failed) has not started; [] for a job that is not waiting."""
    if job.state not in WAITING_STATES:
        return []
    now = now or timezone.now()
    reasons: list[Reason] = []
    due = job.run_at is None or job.run_at <= now
    if not due:
        reasons.append(_time_reason(job, now))
    pause = QueuePause.objects.filter(queue=job.queue).first()
    if pause is not None:
        by = f" by {pause.paused_by}" if pause.paused_by else ""
        why = f": {pause.reason}" if pause.reason else ""
        reasons.append(Reason(QUEUE_PAUSED, (
            f"Queue {job.queue} is paused{by} since {_utc(pause.paused_at)} "
            f"({_ago(pause.paused_at, now)}){why}. Workers claim none of its jobs until it is "
            f"resumed.")))
    serving = _serving_workers(job, now, reasons)
    reasons.extend(_workflow_reasons(job))
    if due and serving and pause is None:
        reasons.extend(_claim_order(job, serving, now))
    return reasons


# -- the reasons ------------------------------------------------------------------------------

def _time_reason(job: Job, now: datetime) -> Reason:
    when = f"in {_span((job.run_at - now).total_seconds())} at {_utc(job.run_at)}"
    if job.state == JobState.FAILED:
        limit = f" of {job.max_attempts}" if job.max_attempts else ""
        error = ": ".join(filter(None, [job.last_error_type, _short(job.last_error_message)]))
        return Reason(RETRY_BACKOFF, (
            f"Attempt {job.attempts}{limit} failed" + (f" ({error})" if error else "")
            + f"; the retry waits out its backoff and is due {when}."), job.run_at)
    return Reason(DUE_LATER, f"It is not due yet: due {when}.", job.run_at)


def _serving_workers(job: Job, now: datetime, reasons: list[Reason]) -> list[Worker]:
    """Live workers that would claim this job; appends NO_WORKER / TASK_NOT_REGISTERED."""
    fresh_after = now - timedelta(seconds=relay_settings().WORKER_STALE_AFTER)
    # Workers that may still be alive: a small, indexed set (state, last_heartbeat_at).
    candidates = [w for w in Worker.objects.filter(
        state__in=(Worker.State.RUNNING, Worker.State.STOPPING)).order_by("-last_heartbeat_at")
        if job.queue in (w.queues or [])]
    live = [w for w in candidates
            if w.state == Worker.State.RUNNING and w.last_heartbeat_at >= fresh_after]
    if not live:
        notes = []
        silent = [w for w in candidates if w.last_heartbeat_at < fresh_after]
        stopping = [w for w in candidates if w.state == Worker.State.STOPPING
                    and w.last_heartbeat_at >= fresh_after]
        if silent:
            w = silent[0]
            notes.append(f"{_count(len(silent), 'worker')} serving it stopped heartbeating "
                         f"(latest: {w.name}, last seen {_ago(w.last_heartbeat_at, now)}) and "
                         f"{'is' if len(silent) == 1 else 'are'} presumed dead")
        if stopping:
            notes.append(f"{_names(stopping)} {'is' if len(stopping) == 1 else 'are'} "
                         f"shutting down and claim nothing new")
        reasons.append(Reason(NO_WORKER, (
            f"No live worker serves queue {job.queue}"
            + (f": {'; '.join(notes)}" if notes else "")
            + f". Start one with: manage.py relay_worker --queues {job.queue}")))
        return []
    serving = [w for w in live if job.task in (w.tasks or [])]
    if not serving:
        reasons.append(Reason(TASK_NOT_REGISTERED, (
            f"{_count(len(live), 'live worker')} serve{'s' if len(live) == 1 else ''} queue "
            f"{job.queue} ({_names(live)}), but none has task {job.task} registered: deploy "
            f"the code that declares it to those workers, or start a worker that has it.")))
    return serving


def _workflow_reasons(job: Job) -> list[Reason]:
    meta = job.meta or {}
    run_id = meta.get("workflow_run")
    if not run_id:
        return []
    from scheduler.definitions import Workflow
    from scheduler.models import STEP_DONE_STATES, RunState, StepRun, StepState, WorkflowRun

    run = WorkflowRun.objects.select_related("definition").filter(pk=run_id).first()
    if run is None:
        return []
    label = f"workflow run #{run.pk} ({run.definition.name})"
    if run.state == RunState.SCHEDULED:
        return [Reason(WORKFLOW_NOT_RUNNING, (
            f"Its {label} has not started yet: it is queued until the previous run of its "
            f"schedule ends."))]
    if run.state != RunState.RUNNING:
        return [Reason(WORKFLOW_NOT_RUNNING, (
            f"Its {label} is {run.state}: this job may still run, but its outcome will not "
            f"advance the run (rerun the run instead)."))]
    step_id = meta.get("step")
    steps = {s.step_id: s for s in StepRun.objects.filter(run=run).only("step_id", "state")}
    step = steps.get(step_id)
    if step is None or step.state != StepState.PENDING:
        return []
    try:
        needs = Workflow(run.definition.spec).needs_of.get(step_id, ())
    except (KeyError, TypeError):
        needs = ()
    waiting = [f"{sid} ({steps[sid].state})" for sid in needs
               if sid in steps and steps[sid].state not in STEP_DONE_STATES]
    return [Reason(WORKFLOW_DEPENDENCIES, (
        f"Step {step_id} of {label} is waiting on its workflow's dependencies"
        + (f": {', '.join(waiting)} must finish first." if waiting else ".")))]


def _claim_order(job: Job, serving: list[Worker], now: datetime) -> list[Reason]:
    reasons = []
    ahead_qs = (Job.objects.filter(queue=job.queue, state__in=WAITING_STATES, run_at__lte=now)
                .filter(Q(priority__gt=job.priority) | Q(priority=job.priority, id__lt=job.pk))
                .values("id"))
    ahead = ahead_qs[:BACKLOG_LIMIT].count()
    if ahead:
        many = f"at least {ahead}" if ahead >= BACKLOG_LIMIT else str(ahead)
        reasons.append(Reason(QUEUE_BACKLOG, (
            f"It is due and served, but {many} due job{'s' if ahead != 1 else ''} ahead of it "
            f"in queue {job.queue} (higher priority, or older at the same priority) "
            f"{'are' if ahead != 1 else 'is'} claimed first.")))
    capacity = sum(w.concurrency for w in serving)
    busy = Job.objects.filter(state=JobState.RUNNING,
                              worker_id__in=[w.pk for w in serving]).count()
    if busy >= capacity:
        reasons.append(Reason(WORKERS_BUSY, (
            f"All {capacity} handler{'s' if capacity != 1 else ''} of the "
            f"{_count(len(serving), 'worker')} that can run it ({_names(serving)}) are busy "
            f"({busy} job{'s' if busy != 1 else ''} running); it starts when one frees up.")))
    if not reasons:
        poll = relay_settings().POLL_INTERVAL
        since = f"due since {_utc(job.run_at)} ({_ago(job.run_at, now)})" if job.run_at else "due"
        reasons.append(Reason(DUE_NOW, (
            f"Nothing holds it back: it is {since} and {_count(len(serving), 'live worker')} "
            f"({_names(serving)}) can run it, so one should claim it within about {poll:g} s. "
            f"If it stays here, check those workers' logs."), job.run_at))
    return reasons


# -- wording ----------------------------------------------------------------------------------

def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _span(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{round(hours / 24)} d"


def _ago(value: datetime, now: datetime) -> str:
    return f"{_span((now - value).total_seconds())} ago"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _names(workers: list[Any], most: int = 3) -> str:
    names = [w.name for w in workers[:most]]
    more = len(workers) - most
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def _short(text: str, most: int = 120) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= most else text[: most - 1] + "…"
