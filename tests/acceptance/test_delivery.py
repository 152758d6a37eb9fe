"""Every job runs, and runs once: real workers draining a real queue."""

from __future__ import annotations

from collections import Counter

import pytest

from queues import enqueue_many
from queues.models import Execution, Job, JobState, Outcome, Worker
from tests.testapp.models import Ledger

pytestmark = pytest.mark.slow


def test_workers_drain_2000_jobs_each_executed_exactly_once(start_worker, vendor):
    processes = 4 if vendor == "postgresql" else 2
    jobs = enqueue_many("tests.record", [(f"k{i}",) for i in range(2000)])
    assert len(jobs) == 2000

    workers = [start_worker("--burst", concurrency=2) for _ in range(processes)]
    for worker in workers:
        assert worker.wait(timeout=180) == 0, worker.log()

    assert Counter(Job.objects.values_list("state", flat=True)) == {JobState.SUCCESS: 2000}
    runs = Counter(Ledger.objects.filter(event="run").values_list("job_id", flat=True))
    assert len(runs) == 2000
    assert set(runs.values()) == {1}, "a job's handler ran more than once"
    assert Execution.objects.count() == 2000
    assert set(Execution.objects.values_list("outcome", "attempt").distinct()) == {
        (Outcome.SUCCESS, 1)
    }
    # The work was shared: every worker process claimed some of it.
    assert Job.objects.values("worker").distinct().count() == processes
    assert set(Worker.objects.values_list("state", flat=True)) == {Worker.State.STOPPED}
    # Results are stored: the handler returned its key.
    assert Job.objects.get(pk=jobs[7].pk).result == "k7"
