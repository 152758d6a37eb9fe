"""The scheduler's leader lease, the tick that honours it, and `relay_scheduler`'s options."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command

from queues.models import Job
from scheduler import clock, leader
from scheduler.models import Firing, Schedule, SchedulerLease
from scheduler.service import Scheduler
from tests.conftest import ROOT, database_env

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def lease() -> SchedulerLease:
    return SchedulerLease.objects.get(name=leader.LEASE)


def seconds_left(row: SchedulerLease) -> float:
    return (row.expires_at - clock.now()).total_seconds()


def test_the_first_scheduler_takes_the_lease_and_renews_it(db):
    assert leader.current() is None
    assert leader.acquire("a", 30) is True
    first = lease()
    assert first.holder == "a"
    assert 29 < seconds_left(first) <= 30
    assert first.acquired_at is not None and first.last_tick_at is not None

    time.sleep(0.05)
    assert leader.acquire("a", 30) is True  # renewing keeps the time it was taken
    renewed = lease()
    assert renewed.acquired_at == first.acquired_at
    assert renewed.expires_at > first.expires_at
    assert renewed.last_tick_at > first.last_tick_at
    assert SchedulerLease.objects.count() == 1


def test_another_scheduler_is_refused_while_the_lease_runs_and_takes_it_after(db):
    assert leader.acquire("a", 1.0) is True
    taken = lease()
    assert leader.acquire("b", 30) is False
    assert leader.acquire("b", 30) is False
    assert lease().holder == "a" and lease().expires_at == taken.expires_at

    time.sleep(1.1)  # "a" died: nobody renewed
    assert leader.acquire("b", 30) is True
    after = lease()
    assert after.holder == "b"
    assert after.acquired_at > taken.acquired_at
    assert 29 < seconds_left(after) <= 30
    assert leader.acquire("a", 30) is False  # the old leader is now the one refused


def test_release_hands_the_lease_over_at_once(db):
    assert leader.acquire("a", 300) is True
    leader.release("b")  # only the holder can release
    assert leader.acquire("b", 300) is False
    leader.release("a")
    assert lease().expires_at is None
    assert leader.acquire("b", 300) is True
    assert lease().holder == "b"


def every_minute(**fields) -> Schedule:
    return Schedule.objects.create(name="every-minute", cron="* * * * *", target_kind="task",
                                   target="tests.record", input={"key": "tick"},
                                   next_fire_at=T0, **fields)


def test_only_the_leader_fires_and_a_stopped_leader_hands_over(db, monkeypatch):
    monkeypatch.setattr(clock, "now", lambda: T0 + timedelta(seconds=5))
    schedule = every_minute()
    a = Scheduler(interval=0.1, lease=30, name="a")
    b = Scheduler(interval=0.1, lease=30, name="b")

    report = b.tick()
    assert (report.leader, report.fired) == (True, 1)
    report = a.tick()
    assert (report.leader, report.fired) == (False, 0)
    monkeypatch.setattr(clock, "now", lambda: T0 + timedelta(minutes=1, seconds=5))
    assert a.tick().fired == 0
    assert list(Firing.objects.order_by("due_at").values_list("due_at", "recorded_by")) == [
        (T0, "b")]

    monkeypatch.setattr(b, "_install_signals", lambda: None)  # keep pytest's handlers
    assert b.run(once=True) == 0  # fires 10:01 and, stopping, releases the lease
    assert lease().expires_at is None
    report = a.tick()
    assert (report.leader, report.fired) == (True, 0)
    assert lease().holder == "a"
    assert list(Firing.objects.order_by("due_at").values_list("due_at", "recorded_by")) == [
        (T0, "b"), (T0 + timedelta(minutes=1), "b")]
    schedule.refresh_from_db()
    assert schedule.next_fire_at == T0 + timedelta(minutes=2)


@pytest.mark.parametrize(("interval", "lease_seconds"), [("5", "5"), ("5", "2"), ("1", "0.5")])
def test_a_lease_not_longer_than_the_interval_is_refused(db, interval, lease_seconds):
    with pytest.raises(CommandError, match="--lease must be longer than --interval"):
        call_command("relay_scheduler", "--interval", interval, "--lease", lease_seconds)
    assert not SchedulerLease.objects.exists()


@pytest.mark.parametrize("args", [["--interval", "0", "--lease", "5"],
                                  ["--interval", "1", "--lease", "-1"]])
def test_non_positive_timings_are_refused(db, args):
    with pytest.raises(CommandError, match="--interval and --lease must be > 0"):
        call_command("relay_scheduler", *args)


def test_the_command_refuses_a_lease_not_longer_than_the_interval_with_exit_code_1(
        transactional_db):
    done = subprocess.run(
        [sys.executable, "-m", "tests.scheduler_main", "--interval", "5", "--lease", "5",
         "--once"], cwd=ROOT, env=database_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "--lease must be longer than --interval" in done.stderr


@pytest.mark.slow
def test_relay_scheduler_once_fires_the_due_schedule_and_exits_0(transactional_db):
    schedule = every_minute(misfire_grace=120)
    env = database_env()
    # The scheduler process sees 10:01:30: 10:00 (90 s late, within the grace) and 10:01 are due.
    env["RELAY_TEST_CLOCK_START"] = str((T0 + timedelta(minutes=1, seconds=30)).timestamp())
    env["RELAY_TEST_CLOCK_SPEED"] = "0"
    done = subprocess.run(
        [sys.executable, "-m", "tests.scheduler_main", "--once", "--interval", "1", "--lease",
         "5", "--name", "cron-box"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr

    rows = list(Firing.objects.order_by("due_at").values_list(
        "due_at", "outcome", "recorded_by", "fired_at"))
    assert rows == [
        (T0, "fired", "cron-box", T0 + timedelta(minutes=1, seconds=30)),
        (T0 + timedelta(minutes=1), "fired", "cron-box", T0 + timedelta(minutes=1, seconds=30)),
    ]
    assert sorted(Job.objects.values_list("dedup_key", flat=True)) == [
        f"relay-schedule:{schedule.pk}:{T0.isoformat()}",
        f"relay-schedule:{schedule.pk}:{(T0 + timedelta(minutes=1)).isoformat()}",
    ]
    schedule.refresh_from_db()
    assert schedule.next_fire_at == T0 + timedelta(minutes=2)
    # It led for its one tick and handed the lease back as it exited.
    assert (lease().holder, lease().expires_at) == ("cron-box", None)
    assert "fired 2, missed 0, skipped 0, queued 0" in done.stdout + done.stderr
