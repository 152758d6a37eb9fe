"""A viewer looks but cannot touch: no action buttons on any page, and POSTs forged from the
page (with a valid session and CSRF token) are refused with nothing changed or recorded. An
admin on the same pages gets the buttons, and an operator's click goes through."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from dashboard.models import AuditEntry
from queues import enqueue
from queues.models import Job, JobState, QueuePause
from scheduler.models import RunState, Schedule, WorkflowRun
from tests.browser import seed
from tests.browser.pages import action_controls, forge_post

pytestmark = pytest.mark.slow


def pages_of(data: seed.Seeded) -> list[str]:
    return [
        "/dashboard/", "/dashboard/jobs/", "/dashboard/jobs/?state=dead_letter",
        f"/dashboard/jobs/{data.waiting.pk}/", f"/dashboard/jobs/{data.failed.pk}/",
        f"/dashboard/jobs/{data.dead.pk}/", f"/dashboard/jobs/{data.done.pk}/",
        "/dashboard/dead-letters/", "/dashboard/failures/", "/dashboard/runs/",
        f"/dashboard/runs/{data.run.pk}/", "/dashboard/workflows/",
        "/dashboard/workflows/nightly-report/", "/dashboard/schedules/", "/dashboard/queues/",
        "/dashboard/workers/", "/dashboard/audit/",
    ]


def test_a_viewer_sees_no_action_and_forged_posts_get_403_changing_nothing(login, tmp_path):
    data = seed.everything(tmp_path)
    page = login("viewer")
    for path in pages_of(data):
        response = page.goto(path)
        assert response.status == 200, path
        expect(page.locator("main h1")).to_be_visible()
        assert action_controls(page) == [], path

    page.goto(f"/dashboard/jobs/{data.dead.pk}/")
    forged = {
        f"/dashboard/jobs/{data.dead.pk}/retry/": {"reason": "x"},
        f"/dashboard/jobs/{data.dead.pk}/discard/": {},
        f"/dashboard/jobs/{data.dead.pk}/edit-retry/": {"args": "[]", "kwargs": "{}"},
        f"/dashboard/jobs/{data.waiting.pk}/cancel/": {},
        f"/dashboard/jobs/{data.done.pk}/rerun/": {},
        "/dashboard/jobs/bulk/": {"action": "retry", "ids": str(data.dead.pk)},
        "/dashboard/failures/retry/": {"fingerprint": "x"},
        f"/dashboard/runs/{data.run.pk}/cancel/": {},
        f"/dashboard/schedules/{data.schedule.pk}/pause/": {},
        f"/dashboard/schedules/{data.schedule.pk}/trigger/": {},
        "/dashboard/workflows/nightly-report/start/": {"input": "{}"},
        "/dashboard/tasks/enqueue/": {"task": "tests.record", "kwargs": "{}"},
        "/dashboard/queues/reports/pause/": {"reason": "forged"},
    }
    jobs_before = Job.objects.count()
    for path, fields in forged.items():
        assert forge_post(page, path, fields) == 403, path
    assert not AuditEntry.objects.exists()
    assert Job.objects.count() == jobs_before
    assert Job.objects.get(pk=data.dead.pk).state == JobState.DEAD_LETTER
    assert Job.objects.get(pk=data.waiting.pk).state == JobState.SCHEDULED
    assert WorkflowRun.objects.get().state == RunState.RUNNING
    assert Schedule.objects.get().enabled
    assert not QueuePause.objects.exists()
    page.reload()
    expect(page.get_by_role("heading", level=1).locator(".badge")).to_have_text("dead letter")


def test_an_admin_sees_the_actions_the_viewer_does_not(login, tmp_path):
    """The control for the test above: the same pages, with the role, do offer them."""
    data = seed.everything(tmp_path)
    page = login("admin")
    offers = {}
    for path in pages_of(data):
        page.goto(path)
        offers[path] = action_controls(page)
    assert f"/dashboard/jobs/{data.dead.pk}/retry/" in offers[f"/dashboard/jobs/{data.dead.pk}/"]
    assert f"/dashboard/jobs/{data.waiting.pk}/cancel/" in offers[
        f"/dashboard/jobs/{data.waiting.pk}/"]
    assert f"/dashboard/runs/{data.run.pk}/cancel/" in offers[f"/dashboard/runs/{data.run.pk}/"]
    assert "/dashboard/jobs/bulk/" in offers["/dashboard/dead-letters/"]
    assert f"/dashboard/schedules/{data.schedule.pk}/pause/" in offers["/dashboard/schedules/"]
    assert "/dashboard/queues/reports/pause/" in offers["/dashboard/queues/"]
    assert any("/start/" in link for link in offers["/dashboard/workflows/"])


def test_an_operator_pauses_a_queue_after_confirming(login):
    """With the role, the button is there and the action goes through, after a
    confirmation, with one audit entry."""
    enqueue("tests.record", queue="reports")
    page = login("operator")
    questions = []
    page.on("dialog", lambda dialog: questions.append(dialog.message))
    page.goto("/dashboard/queues/")
    row = page.get_by_role("row").filter(has_text="reports")
    expect(row).not_to_contain_text("paused")
    row.get_by_placeholder("reason (optional)").fill("db maintenance")
    row.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("row").filter(has_text="reports")).to_contain_text("paused")
    expect(page.get_by_role("row").filter(has_text="reports")).to_contain_text("db maintenance")
    assert questions and "Pause queue reports?" in questions[0]
    assert QueuePause.objects.filter(queue="reports").exists()
    assert list(AuditEntry.objects.values_list("actor", "action", "reason")) == [
        ("operator", "queue.pause", "db maintenance")]
