"""Prefetch: a worker claims short jobs ahead of its handlers, and never hoards them while its
handlers are stuck on long work. History stays exact: a job handed back unstarted has no
execution row and no counted attempt."""

from __future__ import annotations

import signal

import pytest

from queues import cancel, enqueue, enqueue_many
from queues.models import Execution, Job, JobState, Outcome
from tests.conftest import wait_for
from tests.testapp.models import Ledger

pytestmark = pytest.mark.slow


def drained(jobs) -> bool:
    return not Job.objects.filter(pk__in=[j.pk for j in jobs]).exclude(
        state=JobState.SUCCESS).exists()


def warm_up(count: int = 30):
    """Short jobs, so the worker learns they are short and prefetches."""
    jobs = enqueue_many("tests.record", [("warm",)] * count)
    wait_for(lambda: drained(jobs), message="the warm-up jobs to run")


def test_jobs_held_behind_a_long_job_go_back_unstarted(start_worker):
    first = start_worker(relay={"PREFETCH_HOLD": 0.5})
    warm_up()
    long = enqueue("tests.sleep", 4, priority=10)
    shorts = enqueue_many("tests.record", [("short",)] * 10)
    wait_for(lambda: Ledger.objects.filter(job_id=long.pk, event="start").exists(),
             message="the long job to start")
    # The first worker may have claimed some shorts with the long job; after the hold they go
    # back, and a second worker runs them while the first is still busy.
    start_worker()
    wait_for(lambda: drained(shorts), timeout=20, message="the short jobs to run elsewhere")
    assert Job.objects.get(pk=long.pk).state == JobState.RUNNING
    for job in Job.objects.filter(pk__in=[j.pk for j in shorts]):
        assert job.attempts == 1
        assert list(job.executions.values_list("outcome", flat=True)) == [Outcome.SUCCESS]
        assert Ledger.objects.filter(job_id=job.pk).count() == 1
    wait_for(lambda: Job.objects.get(pk=long.pk).state == JobState.SUCCESS, timeout=15,
             message="the long job to finish")
    assert first.proc.poll() is None
    assert "prefetched job(s) unstarted" in first.log()  # it did hold some, and let go


def test_sigterm_hands_back_the_prefetched_jobs_unstarted(start_worker):
    worker = start_worker(relay={"PREFETCH_HOLD": 30})
    warm_up()
    long = enqueue("tests.sleep", 1.5, priority=10)
    waiting = enqueue_many("tests.record", [("after",)] * 10)
    wait_for(lambda: Ledger.objects.filter(job_id=long.pk, event="start").exists(),
             message="the long job to start")
    held = wait_for(lambda: Job.objects.filter(pk__in=[j.pk for j in waiting],
                                               state=JobState.RUNNING).count(),
                    timeout=5, message="the worker to prefetch jobs behind the long one")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0, worker.log()
    assert Job.objects.get(pk=long.pk).state == JobState.SUCCESS  # in flight: finished
    for job in Job.objects.filter(pk__in=[j.pk for j in waiting]):
        assert job.state == JobState.SCHEDULED and job.attempts == 0, (job, held)
        assert not job.executions.exists()
        assert not Ledger.objects.filter(job_id=job.pk).exists()


def test_cancelling_a_prefetched_job_never_runs_it(start_worker):
    start_worker(relay={"PREFETCH_HOLD": 30})
    warm_up()
    long = enqueue("tests.sleep", 2, priority=10)
    after = enqueue_many("tests.record", [("after",)] * 5)
    wait_for(lambda: Ledger.objects.filter(job_id=long.pk, event="start").exists(),
             message="the long job to start")
    target = after[0]
    cancel(target)  # waiting (cancelled at once) or prefetched (cancelled before start)
    wait_for(lambda: Job.objects.get(pk=target.pk).state == JobState.CANCELLED, timeout=10,
             message="the cancel to land")
    wait_for(lambda: drained(after[1:]), timeout=15, message="the other jobs to run")
    assert not Ledger.objects.filter(job_id=target.pk).exists()
    assert set(Execution.objects.filter(job_id=target.pk).values_list("outcome", flat=True)
               ) <= {Outcome.CANCELLED}
