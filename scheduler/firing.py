"""Schedules: when they are due, and firing each due time exactly once.

A due time is fired by inserting a `Firing` row keyed (schedule, due_at) in the same
transaction that starts the run or enqueues the job. The unique key, not leadership, is what
makes a time fire at most once: a second scheduler that believes it leads (a paused process
waking up after its lease ran out) hits the key and rolls back.

Times later than `misfire_grace` (the scheduler was down) are *missed*: each is recorded, and the
misfire policy decides whether the latest of them still runs once (`run_once`) or none does
(`skip`). Lateness counts from the jittered time. Daylight saving follows cron's rules (as in
Debian's cron, via cronsim). When neither the minute nor the hour field starts with `*`
(`30 2 * * *`, `0 9-17 * * *`), a time in the hour skipped in spring runs at the first minute
after the jump (02:30 -> 03:00) and a time in the hour repeated in autumn runs once, on its
first pass. When either starts with `*` (`0 * * * *`, `*/15 2 * * *`), the schedule follows real
elapsed time: its times inside the skipped hour do not happen, and those inside the repeated
hour run on both passes (an hourly schedule fires 23 times on the spring day, 25 in autumn).
"""

from __future__ import annotations

import hashlib
import logging
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cronsim import CronSim
from django.db import IntegrityError, transaction

from scheduler import clock
from scheduler.models import RUN_ACTIVE_STATES, Firing, RunState, Schedule, WorkflowRun

logger = logging.getLogger("scheduler.firing")

MAX_SLOTS_PER_TICK = 1000  # after a long outage, older missed times are summarised
MAX_BACKFILL = 10_000


class ScheduleError(ValueError):
    """Invalid backfill range or schedule options."""


def now() -> datetime:
    return clock.now()


# -- due times --------------------------------------------------------------------------------

def due_times(schedule: Schedule, after: datetime) -> Iterator[datetime]:
    """Due times strictly after `after`, in UTC, in order."""
    if schedule.kind == Schedule.Kind.INTERVAL:
        # Aligned to the Unix epoch, so every scheduler computes the same instants.
        step = int(schedule.interval)
        seconds = int(after.timestamp()) // step * step + step
        while True:
            yield datetime.fromtimestamp(seconds, UTC)
            seconds += step
    zone = zoneinfo.ZoneInfo(schedule.timezone or "UTC")
    start = after.astimezone(zone).replace(microsecond=0)
    for local in CronSim(schedule.cron, start):
        instant = local.astimezone(UTC)
        if instant > after:
            yield instant


def next_due(schedule: Schedule, after: datetime) -> datetime:
    return next(due_times(schedule, after))


def jitter_for(schedule: Schedule, due_at: datetime) -> timedelta:
    """A delay in [0, jitter] fixed per (schedule, time), so every scheduler agrees on it."""
    if not schedule.jitter:
        return timedelta(0)
    digest = hashlib.sha256(f"{schedule.pk}:{due_at.isoformat()}".encode()).digest()
    return timedelta(seconds=int.from_bytes(digest[:4], "big") % (schedule.jitter + 1))


# -- firing -----------------------------------------------------------------------------------

@dataclass
class TickResult:
    fired: int = 0
    missed: int = 0
    skipped: int = 0
    queued: int = 0


def fire_due(*, at: datetime | None = None, recorded_by: str = "", limit: int = 100) -> TickResult:
    """Fire every enabled schedule whose next due time has come. Safe to call from several
    schedulers at once."""
    current = at or now()
    result = TickResult()
    due_ids = list(
        Schedule.objects.filter(enabled=True, next_fire_at__lte=current)
        .order_by("next_fire_at").values_list("id", flat=True)[:limit]
    )
    for schedule_id in due_ids:
        try:
            _fire_schedule(schedule_id, current, recorded_by, result)
        except Exception:
            # One broken schedule must not stop the others; it is retried next tick.
            logger.exception("firing schedule %s failed", schedule_id,
                             extra={"schedule_id": schedule_id})
    return result


def _fire_schedule(schedule_id: int, current: datetime, recorded_by: str,
                   result: TickResult) -> None:
    with transaction.atomic():
        schedule = Schedule.objects.select_for_update().filter(
            id=schedule_id, enabled=True, next_fire_at__lte=current).first()
        if schedule is None:
            return  # another scheduler got here first
        grace = timedelta(seconds=schedule.misfire_grace)
        times: list[datetime] = [schedule.next_fire_at]
        overflow = 0
        for due in due_times(schedule, schedule.next_fire_at):
            if due > current:
                break
            if len(times) >= MAX_SLOTS_PER_TICK:
                overflow += 1
                times.pop(0)
            times.append(due)
        # A time whose jitter has not elapsed yet waits for the next tick, and so does every
        # later time (a jitter longer than the period must not let an earlier time run early).
        ready = {}
        for due in times:
            offset = jitter_for(schedule, due)
            if due + offset > current:
                break
            ready[due] = offset
        times = list(ready)
        if not times:
            return
        # Lateness counts from the jittered time: the jitter itself is never a misfire.
        late = [t for t in times if current - (t + ready[t]) > grace]
        on_time = [t for t in times if current - (t + ready[t]) <= grace]
        once = late[-1] if late and schedule.misfire_policy == Schedule.Misfire.RUN_ONCE else None
        for due in late:
            if due == once:
                note = (f"ran once for {len(late) + overflow} missed time(s) "
                        f"(misfire policy run_once)")
                _fire(schedule, due, current, recorded_by, result, note=note)
            elif _record(schedule, due, Firing.Outcome.MISSED, recorded_by,
                         note=f"scheduler was not running; misfire policy "
                              f"{schedule.misfire_policy}"):
                result.missed += 1
        for due in on_time:
            _fire(schedule, due, current, recorded_by, result)
        if overflow:
            logger.warning("schedule %s: %d older missed times not recorded one by one",
                           schedule.name, overflow, extra={"schedule": schedule.name})
        schedule.next_fire_at = next_due(schedule, times[-1])
        schedule.save(update_fields=["next_fire_at", "last_fired_at", "updated_at"])


def _record(schedule: Schedule, due: datetime, outcome: str, recorded_by: str,
            note: str = "") -> Firing | None:
    """Insert the firing row; None when this time was already recorded (by anyone)."""
    try:
        with transaction.atomic():
            return Firing.objects.create(schedule=schedule, due_at=due, outcome=outcome,
                                         recorded_by=recorded_by, note=note[:500])
    except IntegrityError:
        return None


def _fire(schedule: Schedule, due: datetime, current: datetime, recorded_by: str,
          result: TickResult, note: str = "", outcome: str = Firing.Outcome.FIRED) -> None:
    overlap = schedule.overlap_policy
    active = _previous_active(schedule) if overlap != Schedule.Overlap.ALLOW else None
    if active and overlap == Schedule.Overlap.SKIP:
        if _record(schedule, due, Firing.Outcome.SKIPPED, recorded_by,
                   note=f"previous {active} still active (overlap policy skip)"):
            result.skipped += 1
        return
    firing = _record(schedule, due, outcome, recorded_by, note=note)
    if firing is None:
        return
    queued = bool(active) and overlap == Schedule.Overlap.QUEUE
    from queues import EnqueueError
    from scheduler.engine import WorkflowError

    try:
        with transaction.atomic():
            _start(schedule, firing, due, queued=queued)
    except (WorkflowError, EnqueueError) as exc:
        Firing.objects.filter(pk=firing.pk).update(
            outcome=Firing.Outcome.FAILED,
            note=f"could not start: {type(exc).__name__}: {exc}"[:500])
        logger.error("schedule %s could not start for %s: %s", schedule.name, due, exc,
                     extra={"schedule": schedule.name})
        return
    if queued:
        result.queued += 1
    else:
        result.fired += 1
    schedule.last_fired_at = current


def _start(schedule: Schedule, firing: Firing, due: datetime, *, queued: bool) -> None:
    if schedule.target_kind == Schedule.Target.WORKFLOW:
        from scheduler import engine

        run = engine.start_run(
            schedule.target, schedule.input, schedule=schedule,
            triggered_by=f"schedule {schedule.name} for {due.isoformat()}",
            state=RunState.SCHEDULED if queued else RunState.RUNNING,
        )
        firing.run = run
        if queued:
            firing.outcome = Firing.Outcome.QUEUED
            firing.note = "waits for the previous run to end (overlap policy queue)"
    else:
        if queued:
            firing.outcome = Firing.Outcome.QUEUED
            firing.note = "waits for the previous job to end (overlap policy queue)"
        else:
            firing.job = _enqueue_task(schedule, due)
    firing.fired_at = now()
    firing.save(update_fields=["run", "job", "outcome", "note", "fired_at"])


def _enqueue_task(schedule: Schedule, due: datetime):
    from queues import enqueue

    return enqueue(schedule.target, **(schedule.input or {}),
                   dedup_key=f"relay-schedule:{schedule.pk}:{due.isoformat()}",
                   meta={"schedule": schedule.name, "due_at": due.isoformat()})


def _previous_active(schedule: Schedule) -> str | None:
    if schedule.target_kind == Schedule.Target.WORKFLOW:
        run = (WorkflowRun.objects.filter(schedule=schedule, state__in=RUN_ACTIVE_STATES)
               .order_by("id").values_list("id", flat=True).first())
        return f"run #{run}" if run else None
    from queues.models import ACTIVE_STATES

    job = (Firing.objects.filter(schedule=schedule, job__state__in=ACTIVE_STATES)
           .values_list("job_id", flat=True).first())
    if job:
        return f"job #{job}"
    if Firing.objects.filter(schedule=schedule, outcome=Firing.Outcome.QUEUED).exists():
        return "queued firing"
    return None


def release_queued(*, limit: int = 100) -> int:
    """Start queued firings of task schedules whose previous job has ended (queued workflow
    runs are started by the engine when the previous run ends)."""
    from queues.models import ACTIVE_STATES

    started = 0
    pending = (Firing.objects.filter(outcome=Firing.Outcome.QUEUED, run__isnull=True)
               .order_by("due_at").values_list("id", "schedule_id")[:limit])
    for firing_id, schedule_id in pending:
        with transaction.atomic():
            schedule = Schedule.objects.select_for_update().get(pk=schedule_id)
            if Firing.objects.filter(schedule=schedule, job__state__in=ACTIVE_STATES).exists():
                continue
            firing = Firing.objects.filter(pk=firing_id, outcome=Firing.Outcome.QUEUED).first()
            if firing is None or Firing.objects.filter(
                    schedule=schedule, outcome=Firing.Outcome.QUEUED,
                    due_at__lt=firing.due_at).exists():
                continue
            firing.job = _enqueue_task(schedule, firing.due_at)
            firing.outcome = Firing.Outcome.FIRED
            firing.fired_at = now()
            firing.save(update_fields=["job", "outcome", "fired_at"])
            started += 1
    return started


# -- operator actions -------------------------------------------------------------------------

def trigger(schedule: Schedule, *, by: str = "") -> WorkflowRun | Any:
    """Fire a schedule now, outside its timing (a "run now" button). Not recorded as a due
    time, so it never takes the place of a scheduled firing."""
    if schedule.target_kind == Schedule.Target.WORKFLOW:
        from scheduler import engine

        return engine.start_run(schedule.target, schedule.input, schedule=schedule,
                                triggered_by=f"{by or 'someone'} via schedule {schedule.name}")
    from queues import enqueue

    return enqueue(schedule.target, **(schedule.input or {}),
                   meta={"schedule": schedule.name, "triggered_by": by})


def backfill(schedule: Schedule, start: datetime, end: datetime, *, by: str = "",
             dry_run: bool = False) -> list[datetime]:
    """Fire every due time in [start, end] that never ran: missed times (recorded as missed)
    and times from before the schedule knew about them. Times that already fired, were skipped
    by the overlap policy or were queued are left alone, so a backfill can be repeated safely.
    Returns the times fired (or that would be, with dry_run)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ScheduleError("backfill times must be timezone-aware")
    if end < start:
        raise ScheduleError("backfill end is before its start")
    current = now()
    if end > current:
        raise ScheduleError("backfill end is in the future; the schedule itself fires those")
    times = []
    for due in due_times(schedule, start - timedelta(microseconds=1)):
        if due > end:
            break
        times.append(due)
        if len(times) > MAX_BACKFILL:
            raise ScheduleError(f"more than {MAX_BACKFILL} times in that range; split it")
    existing = dict(Firing.objects.filter(schedule=schedule, due_at__in=times)
                    .values_list("due_at", "outcome"))
    todo = [t for t in times if existing.get(t, Firing.Outcome.MISSED) == Firing.Outcome.MISSED]
    if dry_run:
        return todo
    fired = []
    for due in todo:
        with transaction.atomic():
            if existing.get(due) == Firing.Outcome.MISSED:
                claimed = Firing.objects.filter(schedule=schedule, due_at=due,
                                                outcome=Firing.Outcome.MISSED).update(
                    outcome=Firing.Outcome.BACKFILLED, recorded_by=by,
                    note=f"backfilled by {by or 'someone'}")
                firing = Firing.objects.get(schedule=schedule, due_at=due) if claimed else None
            else:
                firing = _record(schedule, due, Firing.Outcome.BACKFILLED, by,
                                 note=f"backfilled by {by or 'someone'}")
            if firing is None:
                continue  # fired meanwhile by someone else
            _start(schedule, firing, due, queued=False)
            fired.append(due)
    return fired
