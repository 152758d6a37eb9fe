"""Firing schedules in-process, with explicit times: misfires and backfill, daylight saving,
overlap policies, jitter, and each due time firing exactly once when schedulers race."""

from __future__ import annotations

import io
import itertools
import textwrap
import threading
import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from queues import cancel
from queues.models import Job, JobState
from scheduler import clock, firing
from scheduler.definitions import sync
from scheduler.firing import backfill, fire_due, jitter_for, release_queued
from scheduler.models import Firing, RunState, Schedule, WorkflowRun

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
FIRED, MISSED, SKIPPED, QUEUED, BACKFILLED = (
    Firing.Outcome.FIRED, Firing.Outcome.MISSED, Firing.Outcome.SKIPPED,
    Firing.Outcome.QUEUED, Firing.Outcome.BACKFILLED,
)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


T0 = utc(2026, 1, 5, 10, 0)


class SimulatedClock:
    """Stands in for the database clock (`scheduler.clock.now`) of the scheduler under test."""

    def __init__(self) -> None:
        self.current = T0

    def now(self) -> datetime:
        return self.current


@pytest.fixture
def sim(monkeypatch) -> SimulatedClock:
    simulated = SimulatedClock()
    monkeypatch.setattr(clock, "now", simulated.now)
    return simulated


@pytest.fixture
def tick(sim):
    """tick(at): one scheduler tick at simulated time `at`."""

    def run(at: datetime, recorded_by: str = "test") -> firing.TickResult:
        sim.current = at
        return fire_due(at=at, recorded_by=recorded_by)

    return run


def make(name: str = "s", cron: str = "* * * * *", *, first: datetime | None = T0,
         **fields) -> Schedule:
    schedule = Schedule.objects.create(
        name=name, cron=cron, target_kind=fields.pop("target_kind", "task"),
        target=fields.pop("target", "tests.record"), input=fields.pop("input", {"key": name}),
        next_fire_at=first, **fields,
    )
    return schedule


def history(schedule: Schedule) -> list[tuple[datetime, str]]:
    return list(Firing.objects.filter(schedule=schedule).order_by("due_at")
                .values_list("due_at", "outcome"))


def due_of(schedule: Schedule, outcome: str) -> list[datetime]:
    return list(Firing.objects.filter(schedule=schedule, outcome=outcome).order_by("due_at")
                .values_list("due_at", flat=True))


def job_due_times(schedule: Schedule) -> list[str]:
    """The due time of every job the schedule enqueued, oldest job first."""
    return [job.meta["due_at"] for job in Job.objects.filter(meta__schedule=schedule.name)
            .order_by("id")]


def dedup_key(schedule: Schedule, due: datetime) -> str:
    return f"relay-schedule:{schedule.pk}:{due.isoformat()}"


def counts(result: firing.TickResult) -> tuple[int, int, int, int]:
    return result.fired, result.missed, result.skipped, result.queued


# -- misfires and backfill ---------------------------------------------------------------------


def test_run_once_fires_only_the_latest_slot_missed_in_a_three_hour_outage(db, tick):
    hourly = make(cron="0 * * * *", misfire_policy="run_once")
    assert counts(tick(T0 + timedelta(seconds=5))) == (1, 0, 0, 0)
    # The scheduler is down from 10:00:05 until 13:30: 11:00, 12:00 and 13:00 are missed.
    assert counts(tick(utc(2026, 1, 5, 13, 30), recorded_by="back")) == (1, 2, 0, 0)

    assert history(hourly) == [
        (T0, FIRED),
        (utc(2026, 1, 5, 11), MISSED),
        (utc(2026, 1, 5, 12), MISSED),
        (utc(2026, 1, 5, 13), FIRED),
    ]
    once = Firing.objects.get(schedule=hourly, due_at=utc(2026, 1, 5, 13))
    assert once.note == "ran once for 3 missed time(s) (misfire policy run_once)"
    assert once.fired_at == utc(2026, 1, 5, 13, 30) and once.recorded_by == "back"
    assert once.job.dedup_key == dedup_key(hourly, utc(2026, 1, 5, 13))
    missed = Firing.objects.filter(schedule=hourly, outcome=MISSED)
    assert {(f.note, f.job_id, f.fired_at) for f in missed} == {
        ("scheduler was not running; misfire policy run_once", None, None)}
    assert job_due_times(hourly) == [T0.isoformat(), utc(2026, 1, 5, 13).isoformat()]
    hourly.refresh_from_db()
    assert hourly.next_fire_at == utc(2026, 1, 5, 14)
    assert hourly.last_fired_at == utc(2026, 1, 5, 13, 30)
    # Back to normal: the next slot fires on time, and nothing is fired twice.
    assert counts(tick(utc(2026, 1, 5, 14, 0, 2))) == (1, 0, 0, 0)
    assert len(history(hourly)) == 5 and Job.objects.count() == 3


def test_skip_fires_none_of_the_slots_missed_in_a_three_hour_outage(db, tick):
    hourly = make(cron="0 * * * *", misfire_policy="skip")
    assert counts(tick(T0 + timedelta(seconds=5))) == (1, 0, 0, 0)
    assert counts(tick(utc(2026, 1, 5, 13, 30))) == (0, 3, 0, 0)

    assert history(hourly) == [
        (T0, FIRED),
        (utc(2026, 1, 5, 11), MISSED),
        (utc(2026, 1, 5, 12), MISSED),
        (utc(2026, 1, 5, 13), MISSED),
    ]
    assert set(Firing.objects.filter(outcome=MISSED).values_list("note", "job")) == {
        ("scheduler was not running; misfire policy skip", None)}
    assert job_due_times(hourly) == [T0.isoformat()]
    hourly.refresh_from_db()
    assert hourly.next_fire_at == utc(2026, 1, 5, 14)


@pytest.mark.parametrize(("policy", "backfilled"), [
    ("run_once", [utc(2026, 1, 5, 11), utc(2026, 1, 5, 12)]),
    ("skip", [utc(2026, 1, 5, 11), utc(2026, 1, 5, 12), utc(2026, 1, 5, 13)]),
])
def test_backfill_over_the_outage_fires_each_missed_slot_once(db, tick, sim, policy,
                                                               backfilled):
    hourly = make(cron="0 * * * *", misfire_policy=policy)
    tick(T0 + timedelta(seconds=5))
    tick(utc(2026, 1, 5, 13, 30))
    sim.current = utc(2026, 1, 5, 13, 40)
    jobs_before = Job.objects.count()
    outage = (T0, utc(2026, 1, 5, 13, 30))

    assert backfill(hourly, *outage, by="ops", dry_run=True) == backfilled
    assert Job.objects.count() == jobs_before and due_of(hourly, BACKFILLED) == []

    assert backfill(hourly, *outage, by="ops") == backfilled
    assert due_of(hourly, BACKFILLED) == backfilled
    assert due_of(hourly, MISSED) == []
    for row in Firing.objects.filter(schedule=hourly, outcome=BACKFILLED):
        assert (row.recorded_by, row.note) == ("ops", "backfilled by ops")
        assert row.fired_at == utc(2026, 1, 5, 13, 40)
        assert row.job.dedup_key == dedup_key(hourly, row.due_at)
        assert row.job.state == JobState.SCHEDULED
    assert Job.objects.count() == jobs_before + len(backfilled)
    assert len(history(hourly)) == 4  # the missed rows changed outcome; none were added

    # Repeating it fires nothing: every time in the range has run.
    assert backfill(hourly, *outage, by="ops") == []
    assert backfill(hourly, *outage, by="ops", dry_run=True) == []
    assert Job.objects.count() == jobs_before + len(backfilled)
    assert len(history(hourly)) == 4


def test_backfill_also_fires_times_from_before_the_schedule_existed(db, sim):
    hourly = make(cron="0 * * * *", first=utc(2026, 1, 5, 12))
    sim.current = utc(2026, 1, 5, 12, 30)
    times = backfill(hourly, utc(2026, 1, 5, 9, 30), utc(2026, 1, 5, 11, 59), by="ops")
    assert times == [utc(2026, 1, 5, 10), utc(2026, 1, 5, 11)]
    assert history(hourly) == [(utc(2026, 1, 5, 10), BACKFILLED),
                               (utc(2026, 1, 5, 11), BACKFILLED)]
    assert backfill(hourly, utc(2026, 1, 5, 9, 30), utc(2026, 1, 5, 11, 59)) == []
    with pytest.raises(firing.ScheduleError, match="in the future"):
        backfill(hourly, utc(2026, 1, 5, 11), utc(2026, 1, 5, 13))
    with pytest.raises(firing.ScheduleError, match="before its start"):
        backfill(hourly, utc(2026, 1, 5, 11), utc(2026, 1, 5, 10))
    with pytest.raises(firing.ScheduleError, match="timezone-aware"):
        backfill(hourly, datetime(2026, 1, 5, 10), utc(2026, 1, 5, 11))


def test_relay_backfill_command_reads_times_in_the_schedules_zone(db, tick, sim):
    hourly = make(cron="0 * * * *", misfire_policy="skip", timezone="Europe/Berlin")
    tick(T0 + timedelta(seconds=5))
    tick(utc(2026, 1, 5, 13, 30))  # 11:00, 12:00, 13:00 UTC missed (12:00-14:00 in Berlin)
    sim.current = utc(2026, 1, 5, 13, 40)

    out = io.StringIO()
    call_command("relay_backfill", "s", "--from", "2026-01-05T12:00", "--to",
                 "2026-01-05T13:00", "--dry-run", stdout=out)
    assert out.getvalue().splitlines() == [
        "Would fire 2 time(s) of s:",
        "  2026-01-05T12:00:00+01:00",
        "  2026-01-05T13:00:00+01:00",
    ]
    assert due_of(hourly, BACKFILLED) == []
    out = io.StringIO()
    call_command("relay_backfill", "s", "--from", "2026-01-05T12:00+01:00", "--to",
                 "2026-01-05T14:00", stdout=out)
    assert out.getvalue().splitlines()[0] == "Fired 3 time(s) of s:"
    assert due_of(hourly, BACKFILLED) == [utc(2026, 1, 5, 11), utc(2026, 1, 5, 12),
                                          utc(2026, 1, 5, 13)]
    out = io.StringIO()
    call_command("relay_backfill", "s", "--from", "2026-01-05T12:00", "--to",
                 "2026-01-05T14:00", stdout=out)
    assert out.getvalue() == "Fired 0 time(s) of s:\n"
    with pytest.raises(CommandError, match="no schedule named 'nope'"):
        call_command("relay_backfill", "nope", "--from", "2026-01-05", "--to", "2026-01-05")
    with pytest.raises(CommandError, match="in the future"):
        call_command("relay_backfill", "s", "--from", "2026-01-05", "--to", "2026-01-06")


def test_misfire_grace_is_inclusive_and_measured_per_due_time(db, tick):
    every_minute = make(misfire_policy="skip", misfire_grace=60)
    # 10:00 is exactly 60 s late (on time), 10:01 is due now.
    assert counts(tick(T0 + MINUTE)) == (2, 0, 0, 0)
    # 10:02 is 61 s late (missed), 10:03 is 1 s late (on time).
    assert counts(tick(T0 + 3 * MINUTE + timedelta(seconds=1))) == (1, 1, 0, 0)
    assert history(every_minute) == [(T0, FIRED), (T0 + MINUTE, FIRED),
                                     (T0 + 2 * MINUTE, MISSED), (T0 + 3 * MINUTE, FIRED)]


def test_an_outage_longer_than_one_tick_can_record_is_summarised(db, tick, monkeypatch):
    monkeypatch.setattr(firing, "MAX_SLOTS_PER_TICK", 5)
    every_minute = make(cron="0-9 10 * * *")
    # 10:00 ... 10:09 are all missed; only the newest five are recorded one by one.
    assert counts(tick(T0 + 11 * MINUTE)) == (1, 4, 0, 0)
    assert history(every_minute) == [(T0 + k * MINUTE, MISSED) for k in range(5, 9)] + [
        (T0 + 9 * MINUTE, FIRED)]
    assert Firing.objects.get(outcome=FIRED).note == (
        "ran once for 10 missed time(s) (misfire policy run_once)")
    every_minute.refresh_from_db()
    assert every_minute.next_fire_at == T0 + timedelta(days=1)


# -- daylight saving ---------------------------------------------------------------------------


def drive(tick, start: datetime, end: datetime, step: timedelta = MINUTE) -> None:
    """Tick every `step` from `start` to `end`, as a scheduler that never stops."""
    at = start
    while at <= end:
        tick(at)
        at += step


def local_day(day: datetime) -> tuple[datetime, datetime]:
    """[midnight, next midnight) of a Berlin calendar day, in UTC."""
    start = datetime(day.year, day.month, day.day, tzinfo=BERLIN)
    following = start.date() + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=BERLIN)
    return start.astimezone(UTC), end.astimezone(UTC)


def fired_on(schedule: Schedule, day: datetime) -> list[datetime]:
    start, end = local_day(day)
    return list(Firing.objects.filter(schedule=schedule, due_at__gte=start, due_at__lt=end)
                .order_by("due_at").values_list("due_at", flat=True))


def labels(times: list[datetime]) -> list[str]:
    return [t.astimezone(BERLIN).strftime("%H:%M%z") for t in times]


# Local days: 2026-03-28 (24 h), 2026-03-29 (23 h: 02:00 CET -> 03:00 CEST), 2026-03-30 (24 h);
# 2026-10-24 (24 h), 2026-10-25 (25 h: 03:00 CEST -> 02:00 CET), 2026-10-26 (24 h).
SPRING = (utc(2026, 3, 27, 22, 0, 7), utc(2026, 3, 30, 22, 0, 7))
AUTUMN = (utc(2026, 10, 23, 21, 0, 7), utc(2026, 10, 26, 23, 0, 7))


@pytest.fixture
def berlin(db):
    return {
        "daily": make("daily", "30 2 * * *", timezone="Europe/Berlin", first=None),
        "hourly": make("hourly", "0 * * * *", timezone="Europe/Berlin", first=None),
        "quarterly": make("quarterly", "*/15 2 * * *", timezone="Europe/Berlin", first=None),
    }


def start_at(schedules: dict[str, Schedule], at: datetime) -> None:
    for schedule in schedules.values():
        schedule.next_fire_at = firing.next_due(schedule, at)
        schedule.save()


def test_spring_forward_in_berlin(berlin, tick):
    start_at(berlin, SPRING[0])
    drive(tick, *SPRING)  # one tick a minute, 7 s past it, through three local days
    daily, hourly, quarterly = berlin["daily"], berlin["hourly"], berlin["quarterly"]

    # Every due time fired on its first tick; nothing was missed, skipped or queued.
    assert set(Firing.objects.values_list("outcome", flat=True)) == {FIRED}
    for row in Firing.objects.all():
        assert row.fired_at - row.due_at == timedelta(seconds=7)
    # 02:30 does not exist on 29 March: the daily schedule runs at 03:00 CEST instead, once.
    assert fired_on(daily, utc(2026, 3, 28)) == [utc(2026, 3, 28, 1, 30)]
    assert fired_on(daily, utc(2026, 3, 29)) == [utc(2026, 3, 29, 1, 0)]
    assert labels(fired_on(daily, utc(2026, 3, 29))) == ["03:00+0200"]
    assert fired_on(daily, utc(2026, 3, 30)) == [utc(2026, 3, 30, 0, 30)]
    # The hourly schedule follows real time: 23 firings on the 23-hour day, one hour apart.
    spring_day = fired_on(hourly, utc(2026, 3, 29))
    assert len(spring_day) == 23
    assert spring_day == [utc(2026, 3, 28, 23) + k * HOUR for k in range(23)]
    assert labels(spring_day)[:4] == ["00:00+0100", "01:00+0100", "03:00+0200", "04:00+0200"]
    assert len(fired_on(hourly, utc(2026, 3, 28))) == 24
    assert len(fired_on(hourly, utc(2026, 3, 30))) == 24
    # A wildcard minute follows real time too: 02:00-02:45 did not happen, so none fire.
    assert fired_on(quarterly, utc(2026, 3, 29)) == []
    assert labels(fired_on(quarterly, utc(2026, 3, 30))) == [
        "02:00+0200", "02:15+0200", "02:30+0200", "02:45+0200"]


def test_fall_back_in_berlin(berlin, tick):
    start_at(berlin, AUTUMN[0])
    drive(tick, *AUTUMN)
    daily, hourly, quarterly = berlin["daily"], berlin["hourly"], berlin["quarterly"]

    assert set(Firing.objects.values_list("outcome", flat=True)) == {FIRED}
    for row in Firing.objects.all():
        assert row.fired_at - row.due_at == timedelta(seconds=7)
    # 02:30 happens twice on 25 October: the daily schedule runs on the first pass only.
    assert fired_on(daily, utc(2026, 10, 24)) == [utc(2026, 10, 24, 0, 30)]
    assert fired_on(daily, utc(2026, 10, 25)) == [utc(2026, 10, 25, 0, 30)]
    assert labels(fired_on(daily, utc(2026, 10, 25))) == ["02:30+0200"]
    assert fired_on(daily, utc(2026, 10, 26)) == [utc(2026, 10, 26, 1, 30)]
    assert not Firing.objects.filter(schedule=daily, due_at=utc(2026, 10, 25, 1, 30)).exists()
    # The hourly schedule follows real time: 25 firings on the 25-hour day, 02:00 twice.
    autumn_day = fired_on(hourly, utc(2026, 10, 25))
    assert len(autumn_day) == 25
    assert autumn_day == [utc(2026, 10, 24, 22) + k * HOUR for k in range(25)]
    assert labels(autumn_day)[:5] == [
        "00:00+0200", "01:00+0200", "02:00+0200", "02:00+0100", "03:00+0100"]
    assert len(fired_on(hourly, utc(2026, 10, 24))) == 24
    assert len(fired_on(hourly, utc(2026, 10, 26))) == 24
    # A wildcard minute follows real time: both passes through 02:xx fire.
    assert labels(fired_on(quarterly, utc(2026, 10, 25))) == [
        "02:00+0200", "02:15+0200", "02:30+0200", "02:45+0200",
        "02:00+0100", "02:15+0100", "02:30+0100", "02:45+0100"]


# -- overlap -----------------------------------------------------------------------------------


def test_overlap_skip_skips_a_time_while_the_previous_job_is_active(db, tick):
    schedule = make(overlap_policy="skip", misfire_grace=600)
    assert counts(tick(T0 + timedelta(seconds=1))) == (1, 0, 0, 0)
    first = Firing.objects.get(due_at=T0).job
    assert counts(tick(T0 + MINUTE + timedelta(seconds=1))) == (0, 0, 1, 0)
    skipped = Firing.objects.get(due_at=T0 + MINUTE)
    assert (skipped.outcome, skipped.job, skipped.fired_at) == (SKIPPED, None, None)
    assert skipped.note == f"previous job #{first.pk} still active (overlap policy skip)"

    cancel(first)  # the previous job ends (cancelled is as final as success)
    assert counts(tick(T0 + 2 * MINUTE + timedelta(seconds=1))) == (1, 0, 0, 0)
    assert history(schedule) == [(T0, FIRED), (T0 + MINUTE, SKIPPED),
                                 (T0 + 2 * MINUTE, FIRED)]
    assert job_due_times(schedule) == [T0.isoformat(), (T0 + 2 * MINUTE).isoformat()]
    # Several times due in one tick: the first fires, the rest see its job and are skipped.
    assert counts(tick(T0 + 5 * MINUTE)) == (0, 0, 3, 0)  # 10:02's job is still active


def test_overlap_queue_holds_times_until_the_previous_job_ends(db, tick, sim):
    schedule = make(overlap_policy="queue")
    assert counts(tick(T0 + timedelta(seconds=1))) == (1, 0, 0, 0)
    first = Firing.objects.get(due_at=T0).job
    assert counts(tick(T0 + MINUTE + timedelta(seconds=1))) == (0, 0, 0, 1)
    assert counts(tick(T0 + 2 * MINUTE + timedelta(seconds=1))) == (0, 0, 0, 1)
    queued = Firing.objects.get(due_at=T0 + MINUTE)
    assert (queued.job, queued.note) == (
        None, "waits for the previous job to end (overlap policy queue)")
    assert job_due_times(schedule) == [T0.isoformat()]

    assert release_queued() == 0  # the first job is still active
    cancel(first)
    sim.current = T0 + 2 * MINUTE + timedelta(seconds=30)
    assert release_queued() == 1  # only the oldest: it is active now
    released = Firing.objects.get(due_at=T0 + MINUTE)
    assert released.outcome == FIRED and released.fired_at == sim.current
    assert released.job.dedup_key == dedup_key(schedule, T0 + MINUTE)
    assert history(schedule) == [(T0, FIRED), (T0 + MINUTE, FIRED),
                                 (T0 + 2 * MINUTE, QUEUED)]
    assert release_queued() == 0

    cancel(released.job)
    assert release_queued() == 1
    assert history(schedule) == [(T0, FIRED), (T0 + MINUTE, FIRED), (T0 + 2 * MINUTE, FIRED)]
    assert job_due_times(schedule) == [(T0 + k * MINUTE).isoformat() for k in range(3)]
    # A new time while the last released job runs queues again.
    assert counts(tick(T0 + 3 * MINUTE + timedelta(seconds=1))) == (0, 0, 0, 1)


def test_overlap_allow_fires_while_the_previous_job_is_active(db, tick):
    schedule = make(overlap_policy="allow")
    tick(T0 + timedelta(seconds=1))
    assert counts(tick(T0 + MINUTE + timedelta(seconds=1))) == (1, 0, 0, 0)
    assert history(schedule) == [(T0, FIRED), (T0 + MINUTE, FIRED)]
    assert list(Job.objects.order_by("id").values_list("state", flat=True)) == [
        JobState.SCHEDULED, JobState.SCHEDULED]


@pytest.mark.slow
def test_overlap_queue_releases_once_a_worker_finishes_the_previous_job(start_worker, tick):
    from tests.testapp.models import Ledger

    schedule = make(overlap_policy="queue", input={"key": "queued"})
    tick(T0 + timedelta(seconds=1))
    tick(T0 + MINUTE + timedelta(seconds=1))
    assert history(schedule) == [(T0, FIRED), (T0 + MINUTE, QUEUED)]
    assert release_queued() == 0

    assert start_worker("--burst").wait(timeout=60) == 0
    first = Firing.objects.get(due_at=T0).job
    assert first.state == JobState.SUCCESS
    assert release_queued() == 1
    assert history(schedule) == [(T0, FIRED), (T0 + MINUTE, FIRED)]
    assert start_worker("--burst").wait(timeout=60) == 0
    second = Firing.objects.get(due_at=T0 + MINUTE).job
    assert second.state == JobState.SUCCESS
    assert list(Ledger.objects.order_by("id").values_list("job_id", "key")) == [
        (first.pk, "queued"), (second.pk, "queued")]


ONE_STEP = """
    name: nightly
    steps:
      - id: only
        task: tests.record
        input: {key: nightly}
"""


@pytest.fixture
def nightly(transactional_db, tmp_path):
    (tmp_path / "nightly.yaml").write_text(textwrap.dedent(ONE_STEP))
    sync.apply(tmp_path, created_by="test")


def step_job(run: WorkflowRun) -> Job:
    return Job.objects.get(pk=run.steps.get().job_id)


def test_overlap_skip_and_queue_for_workflow_runs(nightly, tick):
    skip = make("skip", target_kind="workflow", target="nightly", input={},
                overlap_policy="skip")
    queue = make("queue", target_kind="workflow", target="nightly", input={},
                 overlap_policy="queue")
    assert counts(tick(T0 + timedelta(seconds=1))) == (2, 0, 0, 0)
    skip_run = Firing.objects.get(schedule=skip, due_at=T0).run
    queue_run = Firing.objects.get(schedule=queue, due_at=T0).run
    assert skip_run.state == queue_run.state == RunState.RUNNING

    assert counts(tick(T0 + MINUTE + timedelta(seconds=1))) == (0, 0, 1, 1)
    skipped = Firing.objects.get(schedule=skip, due_at=T0 + MINUTE)
    assert (skipped.outcome, skipped.run) == (SKIPPED, None)
    assert skipped.note == f"previous run #{skip_run.pk} still active (overlap policy skip)"
    held = Firing.objects.get(schedule=queue, due_at=T0 + MINUTE)
    assert held.outcome == QUEUED
    assert held.run.state == RunState.SCHEDULED and held.run.started_at is None
    assert held.run.steps.get().job_id is None

    # The previous run ends: the queued run starts at once; the skipped time stays skipped.
    cancel(step_job(queue_run))
    cancel(step_job(skip_run))
    held.run.refresh_from_db()
    assert held.run.state == RunState.RUNNING
    assert step_job(held.run).state == JobState.SCHEDULED
    assert history(queue) == [(T0, FIRED), (T0 + MINUTE, FIRED)]  # no longer "queued"
    held.refresh_from_db()
    assert held.fired_at is not None and "started when the previous run ended" in held.note
    assert history(skip) == [(T0, FIRED), (T0 + MINUTE, SKIPPED)]
    assert WorkflowRun.objects.filter(schedule=skip).count() == 1
    assert WorkflowRun.objects.filter(schedule=queue).count() == 2


# -- jitter ------------------------------------------------------------------------------------


def first_slot(schedule: Schedule, accept) -> tuple[datetime, timedelta]:
    """The first due time from T0 whose jitter offset satisfies `accept`."""
    for due in itertools.islice(firing.due_times(schedule, T0 - timedelta(seconds=1)), 1000):
        offset = jitter_for(schedule, due)
        if accept(offset):
            return due, offset
    raise AssertionError("no such time in 1000")


def test_jitter_is_fixed_per_time_and_spreads_times(db):
    schedule = make(jitter=50)
    times = [T0 + k * MINUTE for k in range(200)]
    offsets = [jitter_for(schedule, t) for t in times]
    assert all(timedelta(0) <= o <= timedelta(seconds=50) for o in offsets)
    assert all(o.microseconds == 0 for o in offsets)
    assert len(set(offsets)) > 30  # spread over the window
    # Any scheduler, with its own copy of the row, computes the same offsets.
    again = Schedule.objects.get(pk=schedule.pk)
    assert [jitter_for(again, t) for t in times] == offsets
    assert jitter_for(make("no-jitter"), T0) == timedelta(0)


def test_a_jittered_time_fires_no_earlier_than_its_offset(db, tick):
    schedule = make("jittered", "0 * * * *", jitter=50)
    due, offset = first_slot(schedule, lambda o: o >= timedelta(seconds=2))
    schedule.next_fire_at = due
    schedule.save()

    assert counts(tick(due)) == (0, 0, 0, 0)
    assert counts(tick(due + offset - timedelta(seconds=1))) == (0, 0, 0, 0)
    assert history(schedule) == []
    schedule.refresh_from_db()
    assert schedule.next_fire_at == due
    assert counts(tick(due + offset)) == (1, 0, 0, 0)
    row = Firing.objects.get()
    assert (row.due_at, row.outcome, row.fired_at) == (due, FIRED, due + offset)


def test_jitter_longer_than_the_grace_still_fires_on_time(db, tick):
    # The grace counts from the jittered time: a healthy scheduler must not call it missed.
    schedule = make("spread", "0 * * * *", jitter=600, misfire_grace=60, misfire_policy="skip")
    due, offset = first_slot(schedule, lambda o: o > timedelta(seconds=120))
    schedule.next_fire_at = due
    schedule.save()
    assert counts(tick(due + offset - timedelta(seconds=1))) == (0, 0, 0, 0)
    assert counts(tick(due + offset + timedelta(seconds=10))) == (1, 0, 0, 0)
    row = Firing.objects.get()
    assert (row.due_at, row.outcome, row.note) == (due, FIRED, "")
    # A jittered time more than the grace past its offset is missed, as any other.
    schedule.refresh_from_db()
    nxt = schedule.next_fire_at
    assert nxt == due + HOUR
    assert counts(tick(nxt + jitter_for(schedule, nxt) + timedelta(seconds=61))) == (0, 1, 0, 0)
    assert history(schedule) == [(due, FIRED), (nxt, MISSED)]


def test_jitter_longer_than_the_period_never_fires_a_time_early(db, tick):
    schedule = make("wide", "* * * * *", jitter=300, misfire_grace=3600)
    # Two neighbouring times where the later one's jittered time comes first.
    for due in itertools.islice(firing.due_times(schedule, T0 - timedelta(seconds=1)), 1000):
        first, second = jitter_for(schedule, due), jitter_for(schedule, due + MINUTE)
        if second + MINUTE < first - timedelta(seconds=1):
            break
    else:
        raise AssertionError("no such pair in 1000 times")
    schedule.next_fire_at = due
    schedule.save()

    tick(due + MINUTE + second)  # the second time's offset has elapsed, the first's has not
    assert history(schedule) == []
    tick(due + first)
    fired = Firing.objects.order_by("due_at")
    assert [(f.due_at, f.fired_at) for f in fired][:2] == [
        (due, due + first), (due + MINUTE, due + first)]
    for row in fired:
        assert row.outcome == FIRED
        assert row.fired_at >= row.due_at + jitter_for(schedule, row.due_at)


# -- exactly once ------------------------------------------------------------------------------


def test_a_time_already_recorded_never_fires_again(db, tick):
    every_minute = make()
    tick(T0 + 3 * MINUTE + timedelta(seconds=5))  # 10:00 ... 10:02 missed, 10:03 fired
    assert history(every_minute) == [(T0, MISSED), (T0 + MINUTE, MISSED),
                                     (T0 + 2 * MINUTE, FIRED), (T0 + 3 * MINUTE, FIRED)]
    # A scheduler working from a stale view of the schedule replays those times: the unique
    # (schedule, due_at) key refuses every one of them.
    Schedule.objects.filter(pk=every_minute.pk).update(next_fire_at=T0)
    assert counts(tick(T0 + 3 * MINUTE + timedelta(seconds=6), recorded_by="stale")) == (
        0, 0, 0, 0)
    assert not Firing.objects.filter(recorded_by="stale").exists()
    assert Job.objects.count() == 2
    every_minute.refresh_from_db()
    assert every_minute.next_fire_at == T0 + 4 * MINUTE


def race(at: datetime, names: list[str]) -> list[firing.TickResult]:
    """fire_due at the same instant in one thread (and database connection) per name."""
    barrier = threading.Barrier(len(names))
    results: list[firing.TickResult] = []
    errors: list[BaseException] = []

    def scheduler(name: str) -> None:
        try:
            barrier.wait(timeout=10)
            results.append(fire_due(at=at, recorded_by=name))
        except BaseException as exc:  # noqa: BLE001 -- reported by the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=scheduler, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(results) == len(names)
    return results


def test_schedulers_racing_on_the_same_time_fire_it_once(transactional_db, sim):
    every_minute = make(misfire_grace=3600)
    names = ["a", "b", "c", "d"]
    for k in range(8):
        sim.current = T0 + k * MINUTE + timedelta(seconds=2)
        results = race(sim.current, names)
        assert sorted(r.fired for r in results) == [0, 0, 0, 1]
    # Several due times at once, racing too: each still fires exactly once.
    sim.current = T0 + 12 * MINUTE + timedelta(seconds=30)
    results = race(sim.current, names)
    assert sorted(r.fired for r in results) == [0, 0, 0, 5]

    assert history(every_minute) == [(T0 + k * MINUTE, FIRED) for k in range(13)]
    assert Job.objects.count() == 13
    assert sorted(job_due_times(every_minute)) == [
        (T0 + k * MINUTE).isoformat() for k in range(13)]
    assert set(Firing.objects.values_list("recorded_by", flat=True)) <= set(names)
