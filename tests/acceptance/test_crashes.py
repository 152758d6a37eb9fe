"""A worker that dies, crashes or freezes loses no job, and never gets a stale ack accepted."""

from __future__ import annotations

import signal

import pytest

from queues import enqueue
from queues.models import DeadLetter, Execution, Job, JobState, Outcome, Worker
from tests.conftest import wait_for
from tests.testapp.models import Ledger

pytestmark = pytest.mark.slow


def outcomes(job: Job) -> list[str]:
    return list(Execution.objects.filter(job=job).order_by("id").values_list("outcome", flat=True))


def test_sigkilled_worker_job_is_redelivered_after_its_heartbeat_goes_stale(start_worker):
    # The lease (30 s) outlives the test: only the stale heartbeat can trigger redelivery.
    job = enqueue("tests.sleep_first_attempt", 60, ack_timeout=30)
    victim = start_worker()
    wait_for(lambda: Ledger.objects.filter(job_id=job.pk, event="start").exists(),
             message="first attempt to start")
    victim.signal_group(signal.SIGKILL)
    victim.wait(timeout=10)

    rescuer = start_worker()
    wait_for(lambda: Job.objects.get(pk=job.pk).state == JobState.SUCCESS, timeout=30,
             message="redelivered job to succeed")
    job.refresh_from_db()
    assert outcomes(job) == [Outcome.LOST, Outcome.SUCCESS]
    assert job.attempts == 2
    first = Execution.objects.filter(job=job).order_by("id").first()
    assert first.worker.pid == victim.pid
    assert "lease" in first.error_message or "died" in first.error_message
    assert Worker.objects.get(pid=victim.pid).state == Worker.State.LOST
    assert rescuer.proc.poll() is None


def test_handler_process_crash_counts_as_an_attempt_and_the_worker_keeps_serving(start_worker):
    poison = enqueue("tests.exit_hard", 1, max_attempts=3)
    worker = start_worker()
    wait_for(lambda: Job.objects.get(pk=poison.pk).state == JobState.DEAD_LETTER, timeout=30,
             message="poison job to be dead-lettered")
    healthy = enqueue("tests.record", "after the crash")
    wait_for(lambda: Job.objects.get(pk=healthy.pk).state == JobState.SUCCESS, timeout=30,
             message="the next job to be served by the same worker")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.log()

    assert outcomes(poison) == [Outcome.ERROR] * 3
    errors = set(Execution.objects.filter(job=poison).values_list("error_type", "error_message"))
    assert errors == {("queues.exceptions.HandlerCrashed",
                       "handler process exited with code 1 while running the job")}
    letter = DeadLetter.objects.get(job=poison)
    assert (letter.reason, letter.attempts) == (DeadLetter.Reason.EXHAUSTED, 3)
    assert Job.objects.get(pk=healthy.pk).state == JobState.SUCCESS


def test_frozen_worker_loses_its_lease_and_its_late_report_is_rejected(start_worker):
    job = enqueue("tests.sleep_first_attempt", 3, ack_timeout=1.5)
    frozen = start_worker()
    wait_for(lambda: Ledger.objects.filter(job_id=job.pk, event="start").exists(),
             message="first attempt to start")
    frozen.signal_group(signal.SIGSTOP)

    other = start_worker()
    wait_for(lambda: Job.objects.get(pk=job.pk).state == JobState.SUCCESS, timeout=30,
             message="redelivered job to succeed on the other worker")
    frozen.signal_group(signal.SIGCONT)

    first = Execution.objects.filter(job=job).order_by("id").first()
    wait_for(lambda: Execution.objects.get(pk=first.pk).late_reported_at is not None, timeout=15,
             message="the frozen worker's late report to be recorded")
    first.refresh_from_db()
    assert first.outcome == Outcome.LOST
    assert first.worker.pid == frozen.pid
    # Whatever the thawed worker reported (its handler finished, or it was stopped), the
    # report was refused: the job keeps the outcome of the later delivery.
    assert first.late_outcome in {Outcome.SUCCESS, Outcome.LOST}
    job.refresh_from_db()
    assert job.state == JobState.SUCCESS
    assert job.worker.pid == other.pid
    assert outcomes(job) == [Outcome.LOST, Outcome.SUCCESS]
    # The thawed worker noticed and is serving again.
    wait_for(lambda: Worker.objects.get(pid=frozen.pid).state == Worker.State.RUNNING,
             message="the thawed worker to report itself alive")


def test_worker_reconnects_after_its_database_connection_is_killed(start_worker, vendor):
    if vendor != "postgresql":
        pytest.skip("terminating a server-side session is a PostgreSQL scenario")
    from django.db import connection

    worker = start_worker()
    wait_for(lambda: Worker.objects.filter(pid=worker.pid).exists(), message="worker to start")

    def terminate_worker_sessions() -> int:
        """Once the supervisor's own session exists (besides its LISTEN session), terminate
        every session of the worker."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND application_name NOT LIKE 'relay listener%%'"
            )
            if not cursor.fetchone()[0]:
                return 0
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return cursor.fetchone()[0]

    # The supervisor reconnects lazily after forking its handlers; kill it once it has.
    wait_for(terminate_worker_sessions, message="a worker session to terminate")
    job = enqueue("tests.record", "after reconnect")
    wait_for(lambda: Job.objects.get(pk=job.pk).state == JobState.SUCCESS, timeout=30,
             message="the worker to reconnect and run the job")
    assert worker.proc.poll() is None
    assert "database error" in worker.log()  # it did lose its session, and recovered
