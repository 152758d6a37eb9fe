"""Workers trust the database's clock, not their own."""

from __future__ import annotations

from datetime import datetime

import pytest

from queues import enqueue
from queues.models import Execution, Job, JobState, Outcome, Worker
from tests.conftest import wait_for
from tests.testapp.models import Ledger

pytestmark = pytest.mark.slow

TEN_MINUTES = 600


@pytest.mark.parametrize("offset", [TEN_MINUTES, -TEN_MINUTES])
def test_a_worker_with_a_wrong_clock_runs_nothing_early_and_expires_no_lease_early(
    start_worker, offset
):
    not_due = enqueue("tests.record", "later", delay=120)
    busy = enqueue("tests.sleep", 3, ack_timeout=10)
    honest = start_worker()
    wait_for(lambda: Ledger.objects.filter(job_id=busy.pk, event="start").exists(),
             message="the honest worker to start the job")

    skewed = start_worker("--burst", clock_offset=offset)
    assert skewed.wait(timeout=30) == 0, skewed.log()
    # The skew really applied: the worker's own log timestamps are off by the offset.
    logged = datetime.strptime(skewed.log().splitlines()[0][:19], "%Y-%m-%d %H:%M:%S")
    assert abs((logged - datetime.now()).total_seconds() - offset) < 60
    wait_for(lambda: Job.objects.get(pk=busy.pk).state == JobState.SUCCESS, timeout=15,
             message="the job to finish on the honest worker")

    assert Job.objects.get(pk=not_due.pk).state == JobState.SCHEDULED
    assert not Ledger.objects.filter(job_id=not_due.pk).exists()
    assert [e.outcome for e in Execution.objects.filter(job=busy)] == [Outcome.SUCCESS]
    assert Job.objects.get(pk=busy.pk).worker.pid == honest.pid
    assert Worker.objects.get(pid=honest.pid).state == Worker.State.RUNNING
