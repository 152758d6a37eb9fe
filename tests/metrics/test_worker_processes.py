"""Counters add up the work of every worker process, whichever web process is scraped: two
real `relay_worker` processes run a workload, and /metrics (served here) matches it."""

from __future__ import annotations

import signal

import pytest

from queues import enqueue
from queues.models import Job, JobState, Outcome, Worker
from tests.conftest import wait_for
from tests.metrics.conftest import TOKEN, scrape
from tests.metrics.test_metrics import assert_matches_database

pytestmark = pytest.mark.slow


def test_metrics_count_the_work_of_every_worker_process(start_worker, relay):
    relay(METRICS_TOKEN=TOKEN)
    ok = [enqueue("tests.record", f"ok-{i}") for i in range(6)]
    bad = [enqueue("tests.fail", f"bad-{i}", max_attempts=2) for i in range(3)]
    workers = [start_worker(), start_worker()]
    wait_for(lambda: not Job.objects.exclude(
        state__in=[JobState.SUCCESS, JobState.DEAD_LETTER]).exists(), timeout=60,
        message="every job to succeed or be dead-lettered")
    wait_for(lambda: Worker.objects.filter(state=Worker.State.RUNNING).count() == 2,
             message="both workers to be registered")

    samples = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}", REMOTE_ADDR="198.51.100.7")

    assert_matches_database(samples)
    assert samples.value("relay_jobs_enqueued_total") == len(ok) + len(bad)
    assert samples.value("relay_job_attempts_total", task="tests.record",
                         outcome=Outcome.SUCCESS) == len(ok)
    assert samples.value("relay_job_attempts_total", task="tests.fail",
                         outcome=Outcome.ERROR) == 2 * len(bad)
    assert samples.value("relay_jobs_dead_lettered_total", task="tests.fail",
                         reason="exhausted") == len(bad)
    assert samples.value("relay_job_duration_seconds_count") == len(ok) + 2 * len(bad)
    assert samples.value("relay_workers_alive") == 2
    assert samples.value("relay_queue_workers_alive", queue="default") == 2
    for worker in workers:
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, worker.log()
    assert scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}").value("relay_workers_alive") == 0
