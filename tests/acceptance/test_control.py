"""Cancel and shutdown: operators and deploys stop work cleanly."""

from __future__ import annotations

import signal
import time

import pytest

from queues import cancel, enqueue
from queues.models import Execution, Job, JobState, Outcome, Worker
from tests.conftest import wait_for
from tests.testapp.models import Ledger

pytestmark = pytest.mark.slow


def test_cancel_a_waiting_job_and_a_running_one(start_worker):
    waiting = enqueue("tests.record", "never", delay=3600)
    cancelled = cancel(waiting)
    assert cancelled.state == JobState.CANCELLED and cancelled.finished_at is not None

    running = enqueue("tests.sleep", 3600)
    start_worker()
    wait_for(lambda: Ledger.objects.filter(job_id=running.pk, event="start").exists(),
             message="the long job to start")
    asked = time.monotonic()
    assert cancel(running).state == JobState.RUNNING  # the worker stops it promptly
    wait_for(lambda: Job.objects.get(pk=running.pk).state == JobState.CANCELLED, timeout=10,
             message="the running job to be cancelled")
    assert time.monotonic() - asked < 3
    [run] = Execution.objects.filter(job=running)
    assert run.outcome == Outcome.CANCELLED
    assert run.error_type == "queues.exceptions.JobCancelled"
    assert not Execution.objects.filter(job=waiting).exists()


def test_sigterm_lets_in_flight_jobs_finish_then_exits_0(start_worker):
    job = enqueue("tests.sleep", 2)
    later = enqueue("tests.record", "not started", delay=0.5)
    worker = start_worker()
    wait_for(lambda: Ledger.objects.filter(job_id=job.pk, event="start").exists(),
             message="the job to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0, worker.log()
    job.refresh_from_db()
    assert job.state == JobState.SUCCESS
    assert Job.objects.get(pk=later.pk).state == JobState.SCHEDULED  # claimed nothing new
    assert Worker.objects.get(pid=worker.pid).state == Worker.State.STOPPED


def test_sigterm_releases_jobs_still_running_after_the_grace_period(start_worker):
    job = enqueue("tests.sleep", 3600, max_attempts=1)
    worker = start_worker(relay={"SHUTDOWN_GRACE": 1.0})
    wait_for(lambda: Ledger.objects.filter(job_id=job.pk, event="start").exists(),
             message="the job to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0, worker.log()
    job.refresh_from_db()
    # Handed back, not failed: the attempt does not count against max_attempts=1.
    assert (job.state, job.attempts) == (JobState.SCHEDULED, 0)
    [run] = Execution.objects.filter(job=job)
    assert run.outcome == Outcome.LOST
    assert "released" in run.error_message


def test_a_second_sigterm_stops_in_flight_jobs_at_once(start_worker):
    job = enqueue("tests.sleep", 3600)
    worker = start_worker(relay={"SHUTDOWN_GRACE": 600.0})
    wait_for(lambda: Ledger.objects.filter(job_id=job.pk, event="start").exists(),
             message="the job to start")
    worker.signal(signal.SIGTERM)
    wait_for(lambda: Worker.objects.get(pid=worker.pid).state == Worker.State.STOPPING,
             message="the worker to report it is draining")
    asked = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0, worker.log()
    assert time.monotonic() - asked < 5
    job.refresh_from_db()
    assert (job.state, job.attempts) == (JobState.SCHEDULED, 0)
