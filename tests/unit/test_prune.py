"""Retention: what relay_prune deletes, what it keeps, and its command line."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from queues import enqueue, store
from queues.models import DeadLetter, Execution, Job, JobState
from scheduler.models import RunState, StepRun, WorkflowDefinition, WorkflowRun

pytestmark = pytest.mark.django_db

LONG_AGO = timedelta(days=40)


def finished(state: str, age: timedelta, *, with_history: bool = True) -> Job:
    job = enqueue("tests.record", state)
    when = timezone.now() - age
    Job.objects.filter(pk=job.pk).update(state=state, finished_at=when, attempts=1)
    if with_history:
        Execution.objects.create(job=job, attempt=1, lease_token=1, outcome="success",
                                 finished_at=when)
    if state == JobState.DEAD_LETTER:
        DeadLetter.objects.create(job=job, reason="exhausted", attempts=1)
    return job


def test_prune_deletes_old_finished_jobs_with_their_history_and_keeps_the_rest():
    old = [finished(JobState.SUCCESS, LONG_AGO) for _ in range(5)]
    old_cancelled = finished(JobState.CANCELLED, LONG_AGO)
    old_dead = finished(JobState.DEAD_LETTER, LONG_AGO)
    recent = finished(JobState.SUCCESS, timedelta(days=1))
    waiting = enqueue("tests.record", "waiting")
    Job.objects.filter(pk=waiting.pk).update(created_at=timezone.now() - LONG_AGO)
    # A workflow step that ran one of the old jobs keeps its own record.
    definition = WorkflowDefinition.objects.create(name="w", version=1, spec={}, content_hash="h")
    run = WorkflowRun.objects.create(definition=definition, state=RunState.SUCCESS)
    step = StepRun.objects.create(run=run, step_id="s", task="tests.record", job=old[0],
                                  state="success", output={"kept": True})

    report = store.prune(older_than=timedelta(days=30), keep_failed=True, batch_size=2)
    assert (report.jobs, report.batches) == (6, 3)
    remaining = set(Job.objects.values_list("pk", flat=True))
    assert remaining == {old_dead.pk, recent.pk, waiting.pk}
    assert set(Execution.objects.values_list("job_id", flat=True)) == {old_dead.pk, recent.pk}
    step.refresh_from_db()
    assert step.job is None and step.output == {"kept": True}
    assert old_cancelled.pk not in remaining

    report = store.prune(older_than=timedelta(days=30))  # now without --keep-failed
    assert report.jobs == 1
    assert set(Job.objects.values_list("pk", flat=True)) == {recent.pk, waiting.pk}
    assert not DeadLetter.objects.exists()


def test_prune_command_parses_ages_and_reports():
    for _ in range(3):
        finished(JobState.SUCCESS, timedelta(hours=3), with_history=False)
    out = StringIO()
    call_command("relay_prune", "--older-than", "2h", "--dry-run", stdout=out)
    assert "Would delete 3 finished job(s)" in out.getvalue()
    assert Job.objects.count() == 3
    call_command("relay_prune", "--older-than", "4h", stdout=out)
    assert Job.objects.count() == 3
    call_command("relay_prune", "--older-than", "120m", "--batch-size", "2", stdout=out)
    assert "Deleted 3 finished job(s) older than 120m in 2 batch(es)" in out.getvalue()
    assert not Job.objects.exists()
    for bad in ("30", "thirty days", "-1d", "5y"):
        with pytest.raises(CommandError, match="--older-than"):
            call_command("relay_prune", "--older-than", bad)
    with pytest.raises(CommandError, match="--batch-size"):
        call_command("relay_prune", "--older-than", "1d", "--batch-size", "0")


def test_prune_runs_as_a_task_a_schedule_can_fire():
    from queues.registry import registry

    for _ in range(2):
        finished(JobState.SUCCESS, LONG_AGO)
    keep = finished(JobState.SUCCESS, timedelta(days=1))
    prune_task = registry.get("relay.prune")
    assert prune_task(older_than_days=30) == {"jobs": 2, "batches": 1,
                                              "longest_batch_ms": pytest.approx(0, abs=5000)}
    assert list(Job.objects.values_list("pk", flat=True)) == [keep.pk]
    with pytest.raises(ValueError, match="older_than_days"):
        prune_task(older_than_days=-1)
