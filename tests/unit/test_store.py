"""Claim and ack, in-process: ordering, filters, fencing and the retry decision."""

from __future__ import annotations

import pytest

from queues import enqueue, retry, store
from queues.backoff import Backoff
from queues.exceptions import InvalidTransition
from queues.models import DeadLetter, Execution, Job, JobState, Outcome
from queues.store import Failure, Success

pytestmark = pytest.mark.django_db


@pytest.fixture
def worker_id():
    return store.register_worker(name="test", host="h", pid=1, queues=["default"],
                                 tasks=["tests.record"], concurrency=1).pk


def claim(worker_id, limit=10, queues=("default",), tasks=("tests.record",)):
    return store.claim(worker_id=worker_id, queues=list(queues), tasks=list(tasks), limit=limit)


def test_claim_takes_due_jobs_best_priority_first_and_opens_executions(worker_id):
    low = enqueue("tests.record", "low", priority=-5)
    high = enqueue("tests.record", "high", priority=10)
    mid = enqueue("tests.record", "mid")
    enqueue("tests.record", "later", delay=3600)
    enqueue("tests.record", "elsewhere", queue="other")
    enqueue("tests.fail")  # a task this worker has not registered

    claimed = claim(worker_id)
    assert [c.id for c in claimed] == [high.pk, mid.pk, low.pk]
    assert all(c.attempt == 1 and c.lease_token == 1 for c in claimed)
    assert claim(worker_id) == []
    job = Job.objects.get(pk=high.pk)
    assert job.state == JobState.RUNNING and job.worker_id == worker_id
    assert (job.leased_until - job.started_at).total_seconds() == pytest.approx(30, abs=0.01)
    run = Execution.objects.get(job=job)
    assert (run.attempt, run.lease_token, run.outcome) == (1, 1, None)


def test_ack_with_a_stale_lease_token_is_rejected_and_recorded(worker_id):
    job = enqueue("tests.record")
    [first] = claim(worker_id)
    # The lease is lost (e.g. the worker froze) and the job is redelivered.
    assert store.finish_failure(Failure(first.id, first.lease_token, Outcome.LOST)) == "scheduled"
    [second] = claim(worker_id)
    assert second.lease_token == first.lease_token + 1

    rejected = store.ack_success([Success(first.id, first.lease_token, "stale")])
    assert [r.job_id for r in rejected] == [job.pk]
    assert store.finish_failure(Failure(first.id, first.lease_token, Outcome.ERROR)) is None
    assert store.ack_success([Success(second.id, second.lease_token, {"ok": True})]) == []

    job.refresh_from_db()
    assert (job.state, job.result) == (JobState.SUCCESS, {"ok": True})
    runs = list(Execution.objects.filter(job=job).order_by("id"))
    assert [(r.outcome, r.late_outcome) for r in runs] == [
        (Outcome.LOST, Outcome.ERROR),
        (Outcome.SUCCESS, ""),
    ]
    assert runs[1].output == {"ok": True}


def test_failure_decisions(worker_id):
    retryable = enqueue("tests.record", max_attempts=2)
    [c] = claim(worker_id)
    assert store.finish_failure(Failure(c.id, c.lease_token, Outcome.ERROR, "E", "m")) == "failed"
    Job.objects.filter(pk=c.id).update(run_at=Job.objects.get(pk=c.id).started_at)
    [c] = claim(worker_id)
    assert store.finish_failure(Failure(c.id, c.lease_token, Outcome.ERROR, "E", "m")) == (
        "dead_letter"
    )
    assert DeadLetter.objects.get(job=retryable).reason == DeadLetter.Reason.EXHAUSTED

    permanent = enqueue("tests.record")
    [c] = claim(worker_id)
    assert store.finish_failure(
        Failure(c.id, c.lease_token, Outcome.ERROR, retryable=False)
    ) == "dead_letter"
    assert DeadLetter.objects.get(job=permanent).reason == DeadLetter.Reason.NOT_RETRYABLE

    released = enqueue("tests.record", max_attempts=1)
    [c] = claim(worker_id)
    assert store.finish_failure(Failure(c.id, c.lease_token, Outcome.LOST, release=True)) == (
        "scheduled"
    )
    assert Job.objects.get(pk=released.pk).attempts == 0


def test_retry_and_discard_check_the_state(worker_id):
    job = enqueue("tests.record")
    with pytest.raises(InvalidTransition):
        retry(job)
    [c] = claim(worker_id)
    store.finish_failure(Failure(c.id, c.lease_token, Outcome.ERROR, retryable=False))
    store.discard(job.pk, note="known bad input")
    assert DeadLetter.objects.get(job=job).resolution == DeadLetter.Resolution.DISCARDED
    with pytest.raises(InvalidTransition):
        store.discard(job.pk)


def test_retry_of_a_dead_letter_refuses_to_break_its_dedup_key(worker_id):
    job = enqueue("tests.record", dedup_key="once")
    [c] = claim(worker_id)
    store.finish_failure(Failure(c.id, c.lease_token, Outcome.ERROR, retryable=False))
    enqueue("tests.record", dedup_key="once")  # a new active job took the key
    with pytest.raises(InvalidTransition, match="dedup key"):
        retry(job)
    assert Job.objects.get(pk=job.pk).state == JobState.DEAD_LETTER


def test_backoff_schedule():
    policy = Backoff(base=1, factor=2, cap=10, jitter=0)
    assert [policy.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert Backoff(base=1, factor=2, cap=3600, jitter=0).delay(10_000) == 3600
    jittered = [Backoff(base=10, jitter=0.1).delay(1) for _ in range(200)]
    assert all(9 <= d <= 11 for d in jittered) and len(set(jittered)) > 1


def test_release_unstarted_undoes_the_claim_and_is_fenced(worker_id):
    job = enqueue("tests.record", "held")
    [first] = claim(worker_id)
    assert store.release_unstarted([(first.id, first.lease_token + 1)]) == 0  # wrong token
    assert Job.objects.get(pk=job.pk).state == JobState.RUNNING
    assert store.release_unstarted([(first.id, first.lease_token)]) == 1
    released = Job.objects.get(pk=job.pk)
    assert (released.state, released.attempts, released.worker_id, released.leased_until) == (
        JobState.SCHEDULED, 0, None, None)
    assert not Execution.objects.filter(job=released).exists()  # it never started
    [again] = claim(worker_id)
    assert (again.id, again.attempt, again.lease_token) == (job.pk, 1, first.lease_token + 1)
    assert store.release_unstarted([(first.id, first.lease_token)]) == 0  # stale delivery
    assert Execution.objects.filter(job=released).count() == 1
