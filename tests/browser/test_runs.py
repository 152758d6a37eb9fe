"""An admin cancels a running workflow run from its page and sees every step turn cancelled,
while a real worker stops the step it was running."""

from __future__ import annotations

import textwrap

import pytest
from playwright.sync_api import expect

from dashboard.models import AuditEntry
from queues.models import Job, JobState
from scheduler import engine
from scheduler.definitions import sync
from scheduler.models import RunState, StepRun, StepState
from tests.conftest import wait_for
from tests.testapp.models import Ledger

pytestmark = pytest.mark.slow

NIGHTLY = """
    name: nightly-report
    steps:
      - id: extract
        task: tests.step
        input: {name: extract, sleep: 60}
      - id: transform
        task: tests.step
        needs: [extract]
        input: {name: transform}
      - id: publish
        task: tests.step
        needs: [transform]
        input: {name: publish}
"""


def apply_workflow(folder, name: str, text: str) -> None:
    (folder / f"{name}.yaml").write_text(textwrap.dedent(text))
    sync.apply(folder, created_by="test")


def test_admin_cancels_a_running_run_and_its_steps_turn_cancelled(login, start_worker,
                                                                   tmp_path):
    apply_workflow(tmp_path, "nightly-report", NIGHTLY)
    start_worker()
    run = engine.start_run("nightly-report", {"day": "2024-05-01"}, triggered_by="cron")
    wait_for(lambda: Ledger.objects.filter(key="extract", event="start").exists(),
             message="the worker to start step extract")

    page = login("admin")
    page.goto(f"/dashboard/runs/{run.pk}/")
    expect(page.get_by_role("heading", name=f"Run #{run.pk} of nightly-report")).to_be_visible()
    extract = page.locator("#step-extract")
    expect(extract.locator(".badge")).to_have_text("running")
    expect(extract).to_contain_text("running")  # its job, as the worker reported it
    expect(page.locator("#step-transform .badge")).to_have_text("pending")

    page.get_by_placeholder("reason (optional)").fill("runaway extract")
    page.get_by_role("button", name="Cancel run").click()

    expect(page.locator(".messages")).to_contain_text(f"Run #{run.pk} cancelled")
    for step in ("extract", "transform", "publish"):
        expect(page.locator(f"#step-{step} .badge")).to_have_text("cancelled")
    expect(page.locator("svg g.node.cancelled")).to_have_count(3)
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    expect(page.get_by_role("button", name="Rerun failed steps")).to_be_visible()

    run.refresh_from_db()
    assert run.state == RunState.CANCELLED
    assert set(StepRun.objects.filter(run=run).values_list("state", flat=True)) == {
        StepState.CANCELLED}
    job = Job.objects.get(pk=StepRun.objects.get(run=run, step_id="extract").job_id)
    # The worker stops the handler it was running: the job ends cancelled, never finishing.
    wait_for(lambda: Job.objects.filter(pk=job.pk, state=JobState.CANCELLED).exists(),
             message="the worker to stop the cancelled step's job")
    assert not Ledger.objects.filter(key="extract", event="end").exists()
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.object_ids, entry.reason) == (
        "admin", "run.cancel", [str(run.pk)], "runaway extract")
