"""Two real `relay_scheduler` processes share one schedule: exactly one fires each due time,
and when the leader is killed the other takes over within one tick plus the lease."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from queues.models import Job
from scheduler.firing import next_due
from scheduler.models import Firing, Schedule, SchedulerLease
from tests.conftest import ROOT, database_env, wait_for

pytestmark = pytest.mark.slow

INTERVAL = 0.2  # real seconds between ticks
LEASE = 1.0  # real seconds a silent leader keeps the lead
SPEED = 120.0  # simulated seconds per real second: an hour in 30 s
START = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
MINUTES = 60
STOP = START + timedelta(minutes=MINUTES, seconds=30)  # the simulated clock halts here
BOOT = 3.0  # real seconds the processes get to start before simulated time reaches START


class SchedulerProcess:
    """A real `relay_scheduler` (through tests.scheduler_main) in its own process group."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.scheduler_main", "--interval", str(INTERVAL),
             "--lease", str(LEASE), "--name", name],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-6000:]

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"scheduler {self.name} still running after {timeout}s; "
                                 f"log:\n{self.log()}") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture
def start_scheduler(transactional_db, tmp_path) -> Iterator[Callable[..., SchedulerProcess]]:
    started: list[SchedulerProcess] = []

    def start(name: str, clock_env: dict[str, str]) -> SchedulerProcess:
        process = SchedulerProcess(name, {**database_env(), **clock_env},
                                   tmp_path / f"{name}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def lease() -> SchedulerLease | None:
    return SchedulerLease.objects.filter(name="scheduler").first()


def holder() -> str:
    row = lease()
    return row.holder if row and row.expires_at else ""


def test_two_schedulers_fire_every_minute_of_an_hour_exactly_once_across_a_leader_kill(
        start_scheduler, vendor):
    if vendor != "postgresql":
        pytest.skip("several schedulers on several machines is a PostgreSQL deployment; "
                    "SQLite serves one machine")
    schedule = Schedule.objects.create(
        name="every-minute", cron="* * * * *", target_kind="task", target="tests.record",
        input={"key": "ha"},
        # A handover takes up to (INTERVAL + LEASE) * SPEED = 144 simulated seconds; the
        # times due meanwhile must still count as on time.
        misfire_grace=600,
    )
    schedule.next_fire_at = next_due(schedule, START)
    schedule.save()
    expected = [START + timedelta(minutes=k) for k in range(1, MINUTES + 1)]
    assert schedule.next_fire_at == expected[0]

    real_start = time.time() + BOOT
    clock_env = {"RELAY_TEST_CLOCK_START": str(START.timestamp()),
                 "RELAY_TEST_CLOCK_REAL_START": repr(real_start),
                 "RELAY_TEST_CLOCK_SPEED": str(SPEED),
                 "RELAY_TEST_CLOCK_STOP": str(STOP.timestamp())}

    def simulated() -> datetime:
        at = START + timedelta(seconds=(time.time() - real_start) * SPEED)
        return min(at, STOP)

    schedulers = {name: start_scheduler(name, clock_env) for name in ("sched-a", "sched-b")}
    for process in schedulers.values():
        wait_for(lambda p=process: "started (tick 0.2s, lease 1.0s)" in p.log(), timeout=30,
                 message=f"{process.name} to start")
    wait_for(lambda: holder() in schedulers, timeout=10, message="a scheduler to lead")

    # Let the leader fire the first 25 simulated minutes, then kill it without warning.
    wait_for(lambda: simulated() >= START + timedelta(minutes=25), timeout=30,
             message="simulated minute 25")
    leader_name = holder()
    victim = schedulers[leader_name]
    survivor = next(p for name, p in schedulers.items() if name != leader_name)
    assert Firing.objects.filter(recorded_by=leader_name).count() >= 20
    killed_at = time.monotonic()
    victim.proc.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=10) == -signal.SIGKILL
    dead = lease()
    assert dead.holder == leader_name  # it died holding the lease
    wait_for(lambda: holder() == survivor.name, timeout=10, interval=0.01,
             message=f"{survivor.name} to take the lease over")
    handover = time.monotonic() - killed_at
    print(f"handover took {handover:.3f} s (bound {INTERVAL + LEASE:.1f} s)")
    assert handover <= INTERVAL + LEASE + 0.3
    # Not before the dead leader's lease ran out (both times from the database's clock).
    taken = lease()
    assert taken.acquired_at >= dead.expires_at
    assert f"{survivor.name} took the scheduler lease" in survivor.log()

    # Run to the end of the hour; the clock then stands still, so nothing more can be due.
    wait_for(lambda: simulated() >= STOP, timeout=40, message="the simulated hour to end")
    wait_for(lambda: Firing.objects.filter(due_at=expected[-1]).exists(), timeout=5,
             message="the last minute of the hour to fire")
    time.sleep(5 * INTERVAL)
    survivor.proc.send_signal(signal.SIGTERM)
    assert survivor.wait(timeout=15) == 0, survivor.log()
    assert (lease().holder, lease().expires_at) == (survivor.name, None)  # released on exit

    firings = list(Firing.objects.filter(schedule=schedule).order_by("due_at"))
    assert [f.due_at for f in firings] == expected
    assert {f.outcome for f in firings} == {Firing.Outcome.FIRED}
    # The dead leader fired the first k minutes, the survivor the rest, none twice.
    recorded = [f.recorded_by for f in firings]
    k = recorded.count(leader_name)
    assert 20 <= k < MINUTES
    assert recorded == [leader_name] * k + [survivor.name] * (MINUTES - k)
    jobs = Job.objects.filter(task="tests.record")
    assert jobs.count() == MINUTES
    assert sorted(jobs.values_list("dedup_key", flat=True)) == sorted(
        f"relay-schedule:{schedule.pk}:{due.isoformat()}" for due in expected)
    assert sorted(f.job_id for f in firings) == sorted(jobs.values_list("id", flat=True))
    schedule.refresh_from_db()
    assert schedule.next_fire_at == expected[-1] + timedelta(minutes=1)
    lateness = [(f.fired_at - f.due_at).total_seconds() for f in firings]
    print(f"simulated lateness: max {max(lateness):.0f} s, "
          f"by the dead leader max {max(lateness[:k]):.0f} s")
