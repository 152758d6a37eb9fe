"""A receiver that hangs delays alerts only: a real worker keeps finishing jobs and a real
`relay_scheduler` keeps ticking while its sender waits on the receiver."""

from __future__ import annotations

import json

import pytest

from queues import enqueue
from queues.models import Job, JobState
from scheduler.alerts.models import AlertChannel, AlertDelivery
from scheduler.models import SchedulerLease
from tests.acceptance.test_scheduler_ha import SchedulerProcess
from tests.conftest import database_env, wait_for

pytestmark = pytest.mark.slow

HANG = 8.0  # seconds the receiver holds each request (within the HTTP timeout below)


@pytest.fixture
def scheduler(transactional_db, tmp_path):
    overrides = {"ALERT_WINDOW": 1.0, "ALERT_HTTP_TIMEOUT": 10.0}
    env = {**database_env(), "RELAY_TEST_OVERRIDES": json.dumps(overrides)}
    process = SchedulerProcess("alerts", env, tmp_path / "scheduler.log")
    yield process
    process.stop()


def last_tick():
    return SchedulerLease.objects.get(name="scheduler").last_tick_at


def announced(bodies: list[dict]) -> int:
    """Dead letters the receiver has heard of: one per alert, `count` per summary."""
    return sum(b["count"] if b["summary"] else 1 for b in bodies)


def test_a_hanging_receiver_never_holds_up_jobs_or_ticks(receiver, start_worker, scheduler):
    AlertChannel.objects.create(name="slow", kind="webhook", url=receiver.url)
    receiver.hang(HANG)
    worker = start_worker(concurrency=2)
    failing = [enqueue("tests.fail", max_attempts=1) for _ in range(5)]
    wait_for(lambda: receiver.in_flight, timeout=30, message="the first alert to be held")

    # While the scheduler's sender is stuck on the receiver, work goes on.
    tick = last_tick()
    done = [enqueue("tests.record", key=str(n)) for n in range(20)]
    wait_for(lambda: Job.objects.filter(pk__in=[j.pk for j in done],
                                        state=JobState.SUCCESS).count() == 20,
             timeout=30, message=f"jobs to finish; worker log:\n{worker.log()}")
    assert receiver.in_flight, "the receiver answered before the jobs were done"
    wait_for(lambda: last_tick() > tick, timeout=2,
             message=f"a tick during the hang; scheduler log:\n{scheduler.log()}")
    assert receiver.in_flight

    # Once the receiver answers, every alert is delivered, none twice.
    receiver.hang(0)
    wait_for(lambda: announced(receiver.accepted) == 5 and not AlertDelivery.objects.exclude(
        state=AlertDelivery.State.DELIVERED).exists(), timeout=60,
        message=f"every alert delivered; scheduler log:\n{scheduler.log()}")
    assert Job.objects.filter(pk__in=[j.pk for j in failing],
                              state=JobState.DEAD_LETTER).count() == 5
    bodies = receiver.accepted
    ids = [b["job_id"] for b in bodies if not b["summary"]]
    assert ids and set(ids) <= {j.pk for j in failing} and len(ids) == len(set(ids))
    assert len(bodies) == AlertDelivery.objects.count()  # none sent twice
