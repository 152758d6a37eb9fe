"""Why is this job not running? One test per reason, each set up the way it happens."""

from __future__ import annotations

import textwrap
from datetime import timedelta

import pytest
from django.utils import timezone

from dashboard import explain
from dashboard.explain import why_not_running
from queues import enqueue, pause_queue, store
from queues.models import Job, JobState, Worker
from scheduler import engine
from scheduler.definitions import sync
from tests.jobs import run

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


@pytest.fixture(autouse=True)
def patient_workers(settings):
    # Workers registered by a test stay "live" for the whole test, however slow the machine.
    settings.RELAY = {**settings.RELAY, "WORKER_STALE_AFTER": 600}


def live_worker(name: str, queues: list[str], tasks: list[str] | None = None,
                concurrency: int = 4) -> Worker:
    return store.register_worker(name=name, host="h", pid=1, queues=queues,
                                 tasks=["tests.record"] if tasks is None else tasks,
                                 concurrency=concurrency)


def codes(job: Job) -> list[str]:
    return [r.code for r in why_not_running(job)]


def only(job: Job, code: str) -> explain.Reason:
    reasons = [r for r in why_not_running(job) if r.code == code]
    assert reasons, f"no {code} among {codes(job)}"
    return reasons[0]


def test_a_job_due_later_says_when(db):
    live_worker("w1", ["default"])
    job = enqueue("tests.record", delay=600)
    reason = only(job, explain.DUE_LATER)
    assert "due in 10 min at" in reason.message and "UTC" in reason.message
    assert reason.at == job.run_at
    assert codes(job) == [explain.DUE_LATER]  # served, not paused: nothing else to say


def test_a_failed_job_waits_out_its_retry_backoff(db):
    job = enqueue("tests.fail", max_attempts=3, backoff={"base": 600, "jitter": 0})
    job = run(job, error="card declined")
    assert job.state == JobState.FAILED
    reason = only(job, explain.RETRY_BACKOFF)
    assert "Attempt 1 of 3 failed (RuntimeError: card declined)" in reason.message
    assert "retry" in reason.message and "in 10 min" in reason.message
    assert explain.DUE_LATER not in codes(job)


def test_a_paused_queue_says_by_whom_since_when_and_why(db):
    live_worker("w1", ["reports"])
    pause_queue("reports", by="alice", reason="db maintenance")
    job = enqueue("tests.record", queue="reports")
    reason = only(job, explain.QUEUE_PAUSED)
    assert "Queue reports is paused by alice since" in reason.message
    assert "db maintenance" in reason.message
    # Paused: claim order and "due now" are beside the point.
    assert codes(job) == [explain.QUEUE_PAUSED]


def test_no_live_worker_serves_the_queue(db):
    live_worker("elsewhere", ["default"])
    dead = live_worker("gone-1", ["lonely"])
    Worker.objects.filter(pk=dead.pk).update(
        last_heartbeat_at=timezone.now() - timedelta(minutes=30))
    job = enqueue("tests.record", queue="lonely")
    reason = only(job, explain.NO_WORKER)
    assert "No live worker serves queue lonely" in reason.message
    assert "gone-1" in reason.message and "presumed dead" in reason.message
    assert codes(job) == [explain.NO_WORKER]


def test_live_workers_serve_the_queue_but_none_has_the_task(db):
    live_worker("old-code", ["default"], tasks=["tests.record"])
    job = enqueue("tests.fail")
    reason = only(job, explain.TASK_NOT_REGISTERED)
    assert "1 live worker serves queue default (old-code)" in reason.message
    assert "none has task tests.fail registered" in reason.message
    assert codes(job) == [explain.TASK_NOT_REGISTERED]


@pytest.fixture
def two(db, tmp_path):
    (tmp_path / "two.yaml").write_text(textwrap.dedent(TWO_STEPS))
    sync.apply(tmp_path)


def test_a_step_waiting_on_its_workflow_dependencies(two):
    live_worker("w1", ["default"])
    started = engine.start_run("two")
    # A job for the step that still waits for "first" (the engine only makes it once
    # "first" is done; an operator's manual enqueue or an old rerun can leave one around).
    job = enqueue("tests.record", meta={"workflow_run": started.pk, "workflow": "two",
                                        "step": "second"})
    reason = only(job, explain.WORKFLOW_DEPENDENCIES)
    assert f"Step second of workflow run #{started.pk} (two)" in reason.message
    assert "first (running) must finish first" in reason.message


def test_a_job_of_a_cancelled_run(two):
    live_worker("w1", ["default"])
    started = engine.start_run("two")
    engine.cancel_run(started.pk, by="bob")
    job = enqueue("tests.record", meta={"workflow_run": started.pk, "workflow": "two",
                                        "step": "first"})
    reason = only(job, explain.WORKFLOW_NOT_RUNNING)
    assert f"workflow run #{started.pk} (two) is cancelled" in reason.message


def test_due_and_served_but_behind_other_jobs_in_the_queue(db, monkeypatch):
    live_worker("w1", ["busy"], concurrency=8)
    for _ in range(3):
        enqueue("tests.record", queue="busy")
    enqueue("tests.record", queue="busy", priority=-5)  # behind ours: not counted
    job = enqueue("tests.record", queue="busy")
    enqueue("tests.record", queue="busy", priority=10)  # newer but higher priority: ahead
    reason = only(job, explain.QUEUE_BACKLOG)
    assert "4 due jobs ahead of it in queue busy" in reason.message
    monkeypatch.setattr(explain, "BACKLOG_LIMIT", 2)  # the count stops at the bound
    assert "at least 2 due jobs ahead" in only(job, explain.QUEUE_BACKLOG).message


def test_every_handler_of_the_serving_workers_is_busy(db):
    worker = live_worker("solo", ["one"], concurrency=1)
    first = enqueue("tests.record", queue="one")
    claimed = store.claim(worker_id=worker.pk, queues=["one"], tasks=["tests.record"], limit=1)
    assert [c.id for c in claimed] == [first.pk]
    job = enqueue("tests.record", queue="one")
    reason = only(job, explain.WORKERS_BUSY)
    assert "All 1 handler of the 1 worker that can run it (solo) are busy" in reason.message
    assert explain.QUEUE_BACKLOG not in codes(job)


def test_nothing_holds_a_due_served_job_back(db):
    live_worker("w1", ["default"])
    job = enqueue("tests.record")
    assert codes(job) == [explain.DUE_NOW]
    assert "should claim it within" in why_not_running(job)[0].message


def test_only_waiting_jobs_are_explained(db):
    job = run(enqueue("tests.record"), output="ok")
    assert job.state == JobState.SUCCESS
    assert why_not_running(job) == []


def test_the_reasons_show_on_the_job_page(client_for):
    job = enqueue("tests.record", queue="nobody-serves", delay=300)
    page = client_for("viewer").get(f"/dashboard/jobs/{job.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'class="card why"' in html
    assert 'data-code="due_later"' in html and 'data-code="no_worker"' in html
    assert "No live worker serves queue nobody-serves" in html
