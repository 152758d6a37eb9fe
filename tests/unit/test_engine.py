"""The engine without workers: the job-outcome hook, the sweep that catches outcomes nobody
passed on, and the scheduler tick's second line of redelivery."""

from __future__ import annotations

import textwrap
import time

import pytest

from queues import cancel, store
from queues.models import Execution, Job, JobState, Outcome
from queues.signals import job_finished
from scheduler import engine
from scheduler.definitions import sync
from scheduler.models import RunState, StepRun, StepState
from scheduler.receivers import on_job_finished
from scheduler.service import Scheduler

TWO_STEPS = """
    name: two
    steps:
      - id: first
        task: tests.record
        input: {key: first}
      - id: second
        task: tests.record
        needs: [first]
        input: {key: second}
"""


@pytest.fixture
def two(transactional_db, tmp_path):
    (tmp_path / "two.yaml").write_text(textwrap.dedent(TWO_STEPS))
    sync.apply(tmp_path)
    return tmp_path


def step(run, step_id) -> StepRun:
    return StepRun.objects.get(run=run, step_id=step_id)


def test_a_job_outcome_advances_its_run_at_once_through_the_signal(two):
    run = engine.start_run("two")
    first = step(run, "first")
    assert first.state == StepState.RUNNING and first.job.meta["workflow_run"] == run.pk
    cancel(first.job_id)  # job_finished fires on commit, in this process
    run.refresh_from_db()
    assert run.state == RunState.FAILED
    assert step(run, "first").state == StepState.FAILED
    assert "was cancelled" in step(run, "first").error
    assert step(run, "second").state == StepState.CANCELLED


def test_the_sweep_applies_outcomes_nobody_passed_on(two):
    run = engine.start_run("two")
    first = step(run, "first")
    job_finished.disconnect(dispatch_uid="scheduler.advance_runs")
    try:
        cancel(first.job_id)  # as if the process died right after its commit
    finally:
        job_finished.connect(on_job_finished, dispatch_uid="scheduler.advance_runs")
    assert step(run, "first").state == StepState.RUNNING  # nobody told the engine
    assert engine.sweep() >= 1
    run.refresh_from_db()
    assert run.state == RunState.FAILED
    assert step(run, "first").state == StepState.FAILED
    assert engine.sweep() == 0  # idempotent: nothing left to apply


def test_a_receiver_error_never_reaches_the_worker(two, monkeypatch, caplog):
    run = engine.start_run("two")

    def broken(*args, **kwargs):
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(engine, "job_finished", broken)
    on_job_finished(None, job_id=step(run, "first").job_id, state="success",
                    meta={"workflow_run": run.pk})  # must not raise
    assert f"could not advance run {run.pk}" in caplog.text
    assert "database hiccup" in caplog.text


def test_the_scheduler_tick_redelivers_expired_leases(transactional_db):
    from queues import enqueue

    job = enqueue("tests.record", "x", ack_timeout=0.2)
    worker = store.register_worker(name="gone", host="h", pid=1, queues=["default"],
                                   tasks=["tests.record"], concurrency=1)
    [claimed] = store.claim(worker_id=worker.pk, queues=["default"], tasks=["tests.record"],
                            limit=1)
    assert claimed.id == job.pk
    time.sleep(0.4)
    report = Scheduler(interval=1, lease=5, name="tick-test").tick()
    assert report.leader and report.redelivered == 1
    job.refresh_from_db()
    assert job.state == JobState.SCHEDULED
    assert list(Execution.objects.filter(job=job).values_list("outcome", flat=True)) == [
        Outcome.LOST]
    assert Job.objects.count() == 1
