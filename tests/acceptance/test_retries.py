"""Failing jobs back off, end in dead letters, and come back when an operator retries them."""

from __future__ import annotations

from itertools import pairwise

import pytest

from queues import enqueue, retry
from queues.models import DeadLetter, Execution, Job, JobState, Outcome
from tests.conftest import wait_for
from tests.testapp.models import Switch

pytestmark = pytest.mark.slow


def test_backoff_schedule_then_dead_letter_then_manual_retry(start_worker):
    # base 0.4 s, factor 2, no jitter: retries 0.4 s, 0.8 s, 1.6 s after each failure.
    job = enqueue("tests.fail_until_fixed", max_attempts=4)
    Job.objects.filter(pk=job.pk).update(
        backoff={"base": 0.4, "factor": 2, "cap": 60, "jitter": 0}
    )
    start_worker()
    wait_for(lambda: Job.objects.get(pk=job.pk).state == JobState.DEAD_LETTER, timeout=30,
             message="four attempts to fail")
    runs = list(Execution.objects.filter(job=job).order_by("id"))
    assert [r.outcome for r in runs] == [Outcome.ERROR] * 4
    assert runs[0].error_type == "RuntimeError"
    assert "not fixed yet" in runs[0].traceback
    gaps = [(b.started_at - a.finished_at).total_seconds() for a, b in pairwise(runs)]
    assert len(gaps) == 3
    for gap, expected in zip(gaps, [0.4, 0.8, 1.6], strict=True):
        assert expected - 0.05 <= gap <= expected + 0.6, f"gaps {gaps}"

    letter = DeadLetter.objects.get(job=job)
    assert (letter.reason, letter.attempts, letter.resolved_at) == (
        DeadLetter.Reason.EXHAUSTED, 4, None
    )
    assert letter.error_message == "not fixed yet"

    Switch.objects.create(name="fixed")
    retry(job, note="deployed the fix")
    wait_for(lambda: Job.objects.get(pk=job.pk).state == JobState.SUCCESS, timeout=30,
             message="the retried job to succeed")
    job.refresh_from_db()
    assert job.attempts == 1 and job.result == "fixed"
    letter.refresh_from_db()
    assert letter.resolution == DeadLetter.Resolution.RETRIED
    assert letter.resolution_note == "deployed the fix"
    assert Execution.objects.filter(job=job).count() == 5


def test_retry_forever_is_still_retrying_after_20_attempts(start_worker):
    job = enqueue("tests.fail", "always", max_attempts=None)
    Job.objects.filter(pk=job.pk).update(
        backoff={"base": 0.01, "factor": 1, "cap": 0.01, "jitter": 0}
    )
    start_worker()
    wait_for(lambda: Execution.objects.filter(job=job).count() > 21, timeout=60,
             message="more than 20 attempts")
    job.refresh_from_db()
    assert job.state in {JobState.FAILED, JobState.RUNNING, JobState.SCHEDULED}
    assert job.attempts > 20
    assert not DeadLetter.objects.filter(job=job).exists()
