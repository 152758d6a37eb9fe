"""Push wakeups (PostgreSQL LISTEN/NOTIFY): an idle worker starts a new job at once, however
long its poll interval, and keeps doing so after its listening connection is cut."""

from __future__ import annotations

import time

import pytest
from django.db import connection, transaction

from queues import enqueue, enqueue_many, retry
from queues.models import Job, JobState, Worker
from tests.conftest import wait_for

pytestmark = pytest.mark.slow

SLOW_POLL = {"POLL_INTERVAL": 30.0, "HEARTBEAT_INTERVAL": 0.3}


@pytest.fixture
def postgres(vendor):
    if vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite workers poll")


def started_within(job: Job, seconds: float) -> float:
    began = time.monotonic()
    wait_for(lambda: Job.objects.get(pk=job.pk).state == JobState.SUCCESS, timeout=seconds,
             message=f"job {job.pk} to run within {seconds}s")
    return time.monotonic() - began


def idle_worker(start_worker):
    worker = start_worker(relay=SLOW_POLL)
    wait_for(lambda: Worker.objects.filter(pid=worker.pid).exists(), message="worker to start")
    wait_for(lambda: listeners(worker), message="the worker to LISTEN")
    time.sleep(0.5)  # past its first claim: from here on it only polls every 30 s
    return worker


def listeners(worker, terminate: bool = False) -> int:
    """The worker's listening sessions (named after it), optionally terminated."""
    name = Worker.objects.get(pid=worker.pid).name
    what = "pg_terminate_backend(pid)" if terminate else "pid"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count({what}) FROM pg_stat_activity WHERE datname = "
                       f"current_database() AND application_name = %s",
                       [f"relay listener {name}"[:63]])
        return cursor.fetchone()[0]


def test_an_idle_worker_starts_new_jobs_at_once_whatever_its_poll_interval(
        postgres, start_worker):
    idle_worker(start_worker)
    for _ in range(3):
        assert started_within(enqueue("tests.record", "single"), 5) < 2
    [job] = enqueue_many("tests.record", [("bulk",)])
    assert started_within(job, 5) < 2
    with transaction.atomic():  # delivered on commit, not before
        inside = enqueue("tests.record", "in a transaction")
        time.sleep(0.5)
        assert Job.objects.get(pk=inside.pk).state == JobState.SCHEDULED
    assert started_within(inside, 5) < 2
    delayed = enqueue("tests.record", "delayed", delay=60)
    time.sleep(0.5)
    assert Job.objects.get(pk=delayed.pk).state == JobState.SCHEDULED  # not due: no wakeup
    failed = enqueue("tests.fail", max_attempts=1)
    wait_for(lambda: Job.objects.get(pk=failed.pk).state == JobState.DEAD_LETTER,
             message="the failing job to be dead-lettered")
    retry(failed)  # an operator's retry wakes the worker too
    wait_for(lambda: Job.objects.get(pk=failed.pk).state == JobState.DEAD_LETTER
             and Job.objects.get(pk=failed.pk).attempts == 1
             and Job.objects.get(pk=failed.pk).executions.count() == 2,
             timeout=5, message="the retried job to run again at once")


def test_wakeups_survive_a_cut_listening_connection(postgres, start_worker):
    worker = idle_worker(start_worker)
    assert listeners(worker, terminate=True) == 1
    # A job enqueued while the listener is away waits only for the reconnect (a fraction of a
    # second), after which the worker looks for what it may have missed -- not for its 30 s poll.
    assert started_within(enqueue("tests.record", "after cut"), 5) < 3
    wait_for(lambda: listeners(worker), timeout=15, message="the worker to LISTEN again")
    time.sleep(0.5)
    assert started_within(enqueue("tests.record", "after reconnect"), 5) < 2
    assert worker.proc.poll() is None
    assert "wakeup listener unavailable" in worker.log()
