"""Time limits and leases are enforced by the worker, even on handlers that never return."""

from __future__ import annotations

import signal

import pytest

from queues import enqueue
from queues.models import DeadLetter, Execution, Job, JobState, Outcome
from tests.conftest import wait_for
from tests.testapp.models import Ledger

pytestmark = pytest.mark.slow


def executions(job: Job) -> list[Execution]:
    return list(Execution.objects.filter(job=job).order_by("id"))


def test_time_limit_stops_a_handler_blocked_in_sleep_and_the_job_is_retried(start_worker):
    job = enqueue("tests.sleep", 3600, timeout=1, max_attempts=2)
    worker = start_worker()
    wait_for(lambda: Job.objects.get(pk=job.pk).state == JobState.DEAD_LETTER, timeout=30,
             message="both attempts to time out")
    runs = executions(job)
    assert [e.outcome for e in runs] == [Outcome.TIMEOUT, Outcome.TIMEOUT]
    for run in runs:
        assert run.error_type == "queues.exceptions.JobTimedOut"
        assert "time limit of 1s exceeded" in run.error_message
        assert 0.9 <= run.duration < 3, f"attempt ran {run.duration}s for a 1 s limit"
    assert not Ledger.objects.filter(job_id=job.pk, event="end").exists()
    assert DeadLetter.objects.get(job=job).reason == DeadLetter.Reason.EXHAUSTED
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0


def test_handler_that_swallows_the_stop_request_is_killed(start_worker):
    job = enqueue("tests.ignore_stop", 3600, timeout=0.5, max_attempts=1)
    after = enqueue("tests.record", "next")
    worker = start_worker()
    wait_for(lambda: Job.objects.get(pk=after.pk).state == JobState.SUCCESS, timeout=30,
             message="the worker to kill the stuck handler and serve the next job")
    [run] = executions(job)
    assert run.outcome == Outcome.TIMEOUT
    # KILL_GRACE is 1 s in the test settings: stopped after 0.5 s, killed about 1 s later.
    assert run.duration < 4
    assert Ledger.objects.filter(job_id=job.pk, event="ignored stop").exists()
    assert Job.objects.get(pk=job.pk).state == JobState.DEAD_LETTER
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0


def test_long_job_that_extends_its_lease_is_delivered_once(start_worker):
    # Runs three times its ack timeout, extending the lease as it goes.
    job = enqueue("tests.long_job", 4.5, 0.3, ack_timeout=1.5)
    start_worker()
    start_worker()  # a second worker whose rescuer would take over any expired lease
    wait_for(lambda: Job.objects.get(pk=job.pk).state == JobState.SUCCESS, timeout=30,
             message="the long job to finish")
    assert [e.outcome for e in executions(job)] == [Outcome.SUCCESS]
    assert Ledger.objects.filter(job_id=job.pk, event="start").count() == 1
    job.refresh_from_db()
    assert job.progress["step"] >= 10


def test_long_job_that_does_not_extend_its_lease_is_redelivered_exactly_once(start_worker):
    # The first attempt would run three times the ack timeout; the second is quick.
    job = enqueue("tests.sleep_first_attempt", 4.5, ack_timeout=1.5)
    start_worker()
    start_worker()
    wait_for(lambda: Job.objects.get(pk=job.pk).state == JobState.SUCCESS, timeout=30,
             message="the redelivered job to finish")
    runs = executions(job)
    assert [e.outcome for e in runs] == [Outcome.LOST, Outcome.SUCCESS]
    assert runs[0].duration < 1.5, "the lost attempt outlived its lease"
    assert runs[1].started_at >= runs[0].finished_at, "two deliveries overlapped"
    assert Ledger.objects.filter(job_id=job.pk, event="start").count() == 2
    assert not Ledger.objects.filter(job_id=job.pk, event="end", attempt=1).exists()
