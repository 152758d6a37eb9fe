"""Detectors: read what happened since the last pass and hand it to the throttle.

They run in the leading scheduler's tick (`run_checks`) and in `relay_watchdog`
(`check_scheduler`), never in a worker: the queue's hot path writes nothing for alerts. Each
pass moves its cursor and writes its alerts in one transaction, so a crash loses nothing and
repeats nothing.

- Dead letters: read by id from a cursor. An id skipped because its transaction had not yet
  committed (PostgreSQL hands out ids before commit) is looked for again for GAP_WAIT seconds.
- Failed runs: a run's finish time comes from the clock of the process that ended it, so runs
  that failed since RUN_LOOKBACK before the last pass are read again each pass, and those
  already announced (run id and rerun count) are remembered.
- Queues (every ALERT_CHECK_INTERVAL): one grouped read of the due jobs gives each queue's
  oldest due job; its wait is compared with ALERT_QUEUE_AGE, and with ALERT_NO_WORKER_AFTER
  when no live worker serves the queue. Paused queues are left alone.
- The scheduler (relay_watchdog): the leader lease's last tick against ALERT_SCHEDULER_STALL.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, Max, Min, Q

from queues.conf import relay_settings
from queues.models import WAITING_STATES, DeadLetter, Job, Worker
from scheduler import clock
from scheduler.alerts import events, outbox
from scheduler.alerts.models import AlertCursor, Event
from scheduler.alerts.throttle import Throttle
from scheduler.models import RunState, WorkflowRun

logger = logging.getLogger("scheduler.alerts")

BATCH = 500  # dead letters or failed runs read per pass
PASSES = 4  # passes per tick at most; a bigger burst is read over the next ticks
GAP_WAIT = 60.0  # seconds an id skipped by the cursor is looked for again
MAX_GAPS = 1000
START_LOOKBACK = 600.0  # seconds: on the very first pass, recent dead letters still alert
RUN_LOOKBACK = 600.0  # seconds of failed runs read again each pass
MAX_SEEN = 20_000  # failed runs remembered at most


def run_checks(now: datetime | None = None) -> int:
    """The leader's pass: every detector, each on its own (one failing never stops the
    others, nor the tick). Returns how many deliveries were written."""
    written = 0
    for detector in (dead_letters, failed_runs, queues):
        try:
            written += detector(now)
        except Exception:  # alerts must never break the scheduler's tick
            logger.exception("alert detector %s failed", detector.__name__,
                             extra={"action": "alert_detector", "detector": detector.__name__})
    return written


def _cursor(name: str, **defaults) -> AlertCursor:
    cursor, _ = AlertCursor.objects.select_for_update().get_or_create(name=name,
                                                                      defaults=defaults)
    return cursor


# -- dead letters ----------------------------------------------------------------------------

def dead_letters(now: datetime | None = None) -> int:
    written = 0
    for _ in range(PASSES):
        count, more = _dead_letter_pass(now or clock.now())
        written += count
        if not more:
            break
    return written


def _dead_letter_pass(now: datetime) -> tuple[int, bool]:
    with transaction.atomic():
        cursor = AlertCursor.objects.select_for_update().filter(name="dead_letters").first()
        if cursor is None:
            # First pass ever: announce what is recent, not a database's whole history.
            start = (DeadLetter.objects
                     .filter(created_at__lt=now - timedelta(seconds=START_LOOKBACK))
                     .aggregate(top=Max("id"))["top"] or 0)
            cursor = _cursor("dead_letters", position=start)
        gaps = {int(k): v for k, v in (cursor.gaps or {}).items()}
        wanted = Q(id__gt=cursor.position)
        if gaps:
            wanted |= Q(id__in=list(gaps))
        letters = list(DeadLetter.objects.filter(wanted).select_related("job")
                       .only("id", "reason", "error_type", "error_message", "attempts",
                             "created_at", "job__id", "job__task", "job__queue",
                             "job__max_attempts")
                       .order_by("id")[:BATCH])
        stamp = now.timestamp()
        for letter in letters:
            if letter.pk > cursor.position:
                first = max(cursor.position + 1, letter.pk - MAX_GAPS)
                gaps.update({i: stamp for i in range(first, letter.pk)})
                cursor.position = letter.pk
            gaps.pop(letter.pk, None)
        gaps = {i: t for i, t in sorted(gaps.items())[-MAX_GAPS:] if stamp - t < GAP_WAIT}
        throttle = Throttle(Event.DEAD_LETTER, now)
        throttle.close_windows(lambda subject, count, since, until, sample: (
            events.dead_letter_summary(*subject.split("/", 1), count, since, until, sample)))
        by_subject: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for letter in letters:
            by_subject[(letter.job.queue, letter.job.task)].append(events.dead_letter_fact(letter))
        for (queue, task), facts in by_subject.items():
            throttle.events(events.dead_letter_subject(queue, task), facts, events.dead_letter)
        new_gaps = {str(i): t for i, t in gaps.items()}
        if letters or new_gaps != cursor.gaps:
            cursor.gaps, cursor.checked_at = new_gaps, now
            cursor.save()
        return outbox.write(throttle.alerts, now), len(letters) == BATCH


# -- workflow runs ---------------------------------------------------------------------------

def failed_runs(now: datetime | None = None) -> int:
    now = now or clock.now()
    with transaction.atomic():
        cursor = _cursor("failed_runs")
        since = min(cursor.checked_at or now, now) - timedelta(seconds=RUN_LOOKBACK)
        recent = list(WorkflowRun.objects.filter(state=RunState.FAILED, finished_at__gte=since)
                      .order_by("finished_at", "id").values_list("id", "reruns")[:MAX_SEEN])
        seen = {int(k): v for k, v in (cursor.seen or {}).items()}
        new_ids = [run_id for run_id, reruns in recent if seen.get(run_id) != reruns][:BATCH]
        runs = {run.pk: run for run in WorkflowRun.objects.filter(pk__in=new_ids)
                .select_related("definition")
                .only("id", "reruns", "error", "finished_at", "triggered_by", "state",
                      "definition__name", "definition__version")}
        throttle = Throttle(Event.RUN_FAILED, now)
        throttle.close_windows(lambda subject, count, since, until, sample: (
            events.run_failed_summary(subject, count, since, until, sample)))
        by_workflow: dict[str, list[dict]] = defaultdict(list)
        for run_id in new_ids:
            run = runs.get(run_id)
            if run is None or run.state != RunState.FAILED:
                continue
            by_workflow[run.definition.name].append(events.run_fact(run))
            seen[run_id] = run.reruns
        for workflow, facts in by_workflow.items():
            throttle.events(workflow, facts, events.run_failed)
        # Remember only what the next pass reads again.
        current = {run_id for run_id, _ in recent}
        cursor.seen = {str(k): v for k, v in seen.items() if k in current}
        if len(new_ids) < BATCH:
            cursor.checked_at = now  # else the rest is read from the same point next pass
        cursor.save()
        return outbox.write(throttle.alerts, now)


# -- queues ----------------------------------------------------------------------------------

def queues(now: datetime | None = None, *, force: bool = False) -> int:
    """Backlog and no-worker conditions, at most every ALERT_CHECK_INTERVAL (or `force`)."""
    from queues.operations import paused_queues

    conf = relay_settings()
    now = now or clock.now()
    cursor = AlertCursor.objects.filter(name="queues").first()
    if (not force and cursor and cursor.checked_at
            and now - cursor.checked_at < timedelta(seconds=conf.ALERT_CHECK_INTERVAL)):
        return 0
    # Read outside the transaction: on SQLite it would hold the write lock while scanning.
    heads = {row["queue"]: row for row in
             Job.objects.filter(state__in=WAITING_STATES, run_at__lte=now)
             .values("queue").annotate(oldest=Min("run_at"), waiting=Count("*")).order_by()}
    paused = set(paused_queues())
    stale_before = now - timedelta(seconds=conf.WORKER_STALE_AFTER)
    served: set[str] = set()
    for names in Worker.objects.filter(state=Worker.State.RUNNING,
                                       last_heartbeat_at__gte=stale_before
                                       ).values_list("queues", flat=True):
        served.update(names or ())
    backlog: dict[str, tuple[float, float, int]] = {}
    unserved: dict[str, tuple[float, int]] = {}
    for name, head in heads.items():
        if name in paused:
            continue
        age = max(0.0, (now - head["oldest"]).total_seconds())
        limit = conf.ALERT_QUEUE_AGE_BY_QUEUE.get(name, conf.ALERT_QUEUE_AGE)
        if limit is not None and age >= limit:
            backlog[name] = (age, limit, head["waiting"])
        if (conf.ALERT_NO_WORKER_AFTER is not None and name not in served
                and age >= conf.ALERT_NO_WORKER_AFTER):
            unserved[name] = (age, head["waiting"])
    with transaction.atomic():
        cursor = _cursor("queues")
        cursor.checked_at = now
        cursor.save(update_fields=["checked_at"])
        alerts = []
        throttle = Throttle(Event.QUEUE_BACKLOG, now)
        for name, (age, limit, waiting) in sorted(backlog.items()):
            throttle.condition(name, lambda since, resolved, n=name, a=age, t=limit, w=waiting:
                               events.queue_backlog(n, a, t, w, since, resolved=resolved))
        throttle.clear_others(backlog, lambda name, since: events.queue_backlog(
            name, 0.0, conf.ALERT_QUEUE_AGE_BY_QUEUE.get(name, conf.ALERT_QUEUE_AGE) or 0.0,
            0, since, resolved=True), keep=paused)
        alerts += throttle.alerts
        throttle = Throttle(Event.NO_WORKER, now)
        for name, (age, waiting) in sorted(unserved.items()):
            throttle.condition(name, lambda since, resolved, n=name, a=age, w=waiting:
                               events.no_worker(n, a, w, since, resolved=resolved))
        throttle.clear_others(unserved, lambda name, since: events.no_worker(
            name, 0.0, 0, since, resolved=True), keep=paused)
        alerts += throttle.alerts
        return outbox.write(alerts, now)


# -- the scheduler ---------------------------------------------------------------------------

def check_scheduler(now: datetime | None = None) -> int:
    """relay_watchdog's check: has the leading scheduler ticked recently? A scheduler cannot
    report that it stopped, so another process asks."""
    from scheduler import leader

    conf = relay_settings()
    now = now or clock.now()
    lease = leader.current()
    if lease is None or lease.last_tick_at is None:
        return 0  # no scheduler has ever run against this database
    age = max(0.0, (now - lease.last_tick_at).total_seconds())
    stalled = conf.ALERT_SCHEDULER_STALL is not None and age >= conf.ALERT_SCHEDULER_STALL
    with transaction.atomic():
        throttle = Throttle(Event.SCHEDULER_STALLED, now)
        if stalled:
            throttle.condition("scheduler", lambda since, resolved: events.scheduler_stalled(
                lease.last_tick_at, age, lease.holder, since, resolved=resolved))
        throttle.clear_others(["scheduler"] if stalled else [], lambda _, since: (
            events.scheduler_stalled(lease.last_tick_at, age, lease.holder, since,
                                     resolved=True)))
        return outbox.write(throttle.alerts, now)
