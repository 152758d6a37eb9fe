"""Pausing a queue: workers claim none of its jobs, other queues run on, resume wakes them."""

from __future__ import annotations

import time

import pytest

from queues import enqueue, pause_queue, resume_queue
from queues.models import Job, JobState
from tests.conftest import wait_for

pytestmark = pytest.mark.slow


def test_a_paused_queue_is_not_claimed_until_resumed(start_worker):
    assert pause_queue("reports", by="ops", reason="db maintenance") is True
    assert pause_queue("reports") is False  # already paused
    held = enqueue("tests.record", "held", queue="reports")
    other = enqueue("tests.record", "other", queue="default")
    start_worker(queues="reports,default", concurrency=2)
    wait_for(lambda: Job.objects.get(pk=other.pk).state == JobState.SUCCESS,
             message="the job of the unpaused queue to run")
    time.sleep(1.0)  # several poll rounds (POLL_INTERVAL is 0.1 s in tests)
    assert Job.objects.get(pk=held.pk).state == JobState.SCHEDULED
    assert resume_queue("reports") is True
    resumed = time.monotonic()
    wait_for(lambda: Job.objects.get(pk=held.pk).state == JobState.SUCCESS, timeout=10,
             message="the held job to run after resume")
    assert time.monotonic() - resumed < 5
    assert resume_queue("reports") is False


def test_a_single_queue_worker_honours_the_pause(start_worker):
    pause_queue("solo")
    job = enqueue("tests.record", "solo", queue="solo")
    start_worker(queues="solo")
    time.sleep(1.0)
    assert Job.objects.get(pk=job.pk).state == JobState.SCHEDULED
    resume_queue("solo")
    wait_for(lambda: Job.objects.get(pk=job.pk).state == JobState.SUCCESS, timeout=10,
             message="the job to run after resume")
