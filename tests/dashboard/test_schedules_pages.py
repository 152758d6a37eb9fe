"""Schedules page: next fire times, last firing, and pause / resume / trigger now."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from dashboard.models import AuditEntry
from queues.models import Job
from scheduler.models import Firing, Schedule, WorkflowRun
from tests.dashboard.conftest import csrf_post
from tests.dashboard.test_runs import OTHER, TEAM_A, write_workflows

NOW = datetime(2030, 1, 15, 10, 20, 5, tzinfo=UTC)


@pytest.fixture
def schedules(users, tmp_path, monkeypatch):
    """other-flow's cron schedule (from its file) and an hourly task schedule; the scheduler's
    clock stands at NOW."""
    monkeypatch.setattr("scheduler.clock.now", lambda: NOW)
    write_workflows(tmp_path / "workflows", team_a=TEAM_A, other=OTHER)
    task = Schedule.objects.create(name="hourly-<b>task</b>", kind=Schedule.Kind.INTERVAL,
                                   interval=3600, target_kind=Schedule.Target.TASK,
                                   target="tests.record",
                                   input={"key": "k", "password": "SENTINEL-pw"},
                                   next_fire_at=datetime(2030, 1, 15, 11, tzinfo=UTC),
                                   overlap_policy=Schedule.Overlap.SKIP)
    return {"flow": Schedule.objects.get(name="other-flow"), "task": task}


def row(html: str, schedule: Schedule) -> str:
    start = html.index(f'<tr id="schedule-{schedule.pk}">')
    return html[start:html.index("</tr>", start)]


def times(html: str) -> list[str]:
    return re.findall(r'<time datetime="([^"]+)"', html)


def test_schedules_page_shows_timing_next_fire_times_and_the_last_firing(schedules,
                                                                         client_for):
    flow, task = schedules["flow"], schedules["task"]
    Firing.objects.create(schedule=flow, due_at=datetime(2030, 1, 14, 1, 30, tzinfo=UTC),
                          outcome=Firing.Outcome.SKIPPED, note="previous run #3 still active")
    Firing.objects.create(schedule=flow, due_at=datetime(2030, 1, 13, 1, 30, tzinfo=UTC),
                          outcome=Firing.Outcome.FIRED)
    response = client_for("viewer").get("/dashboard/schedules/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="live"' in html
    cron = row(html, flow)
    assert "<code>30 2 * * *</code>" in cron and "Europe/Berlin" in cron
    assert 'href="/dashboard/workflows/other-flow/"' in cron
    # 02:30 in Berlin is 01:30 UTC in winter: the next three after NOW
    assert times(cron)[:3] == ["2030-01-16T01:30:00+00:00", "2030-01-17T01:30:00+00:00",
                               "2030-01-18T01:30:00+00:00"]
    # the latest firing, by due time
    assert "state-skipped" in cron and "previous run #3 still active" in cron
    assert "state-fired" not in cron
    assert "run once for all missed times" in cron
    hourly = row(html, task)
    assert times(hourly)[:3] == ["2030-01-15T11:00:00+00:00", "2030-01-15T12:00:00+00:00",
                                 "2030-01-15T13:00:00+00:00"]
    assert "every 3600s" in hourly and "skip while the previous run is active" in hourly
    assert "hourly-&lt;b&gt;task&lt;/b&gt;" in hourly and "SENTINEL-pw" not in html
    # viewers see no buttons
    assert "Pause" not in html and "Trigger now" not in html and "/pause/" not in html


def test_pause_resume_and_trigger_write_one_audit_entry_each(schedules, client_for):
    flow = schedules["flow"]
    operator = client_for("operator")
    page = row(operator.get("/dashboard/schedules/").content.decode(), flow)
    assert "Pause" in page and "Trigger now" in page and page.count("data-confirm=") == 2

    assert csrf_post(operator, f"/dashboard/schedules/{flow.pk}/pause/",
                     {"reason": "freeze"}).status_code == 302
    flow.refresh_from_db()
    assert not flow.enabled
    page = row(operator.get("/dashboard/schedules/").content.decode(), flow)
    assert "state-paused" in page and "Resume" in page and "Pause</button>" not in page

    assert csrf_post(operator, f"/dashboard/schedules/{flow.pk}/resume/").status_code == 302
    flow.refresh_from_db()
    assert flow.enabled and flow.next_fire_at == datetime(2030, 1, 16, 1, 30, tzinfo=UTC)

    assert csrf_post(operator, f"/dashboard/schedules/{flow.pk}/trigger/",
                     {"reason": "rerun tonight's"}).status_code == 302
    run = WorkflowRun.objects.get()
    assert run.schedule == flow and run.input["source"] == "nightly"
    assert list(AuditEntry.objects.order_by("id").values_list("action", "object_ids",
                                                                "reason")) == [
        ("schedule.pause", [str(flow.pk)], "freeze"),
        ("schedule.resume", [str(flow.pk)], ""),
        ("schedule.trigger", [str(flow.pk)], "rerun tonight's"),
    ]
    assert AuditEntry.objects.get(action="schedule.trigger").details["workflow_run"] == run.pk
    # resuming a schedule that is not paused is refused, with no entry
    csrf_post(operator, f"/dashboard/schedules/{flow.pk}/resume/")
    assert AuditEntry.objects.count() == 3


def test_trigger_a_task_schedule_enqueues_its_job(schedules, client_for):
    task = schedules["task"]
    response = csrf_post(client_for("operator"), f"/dashboard/schedules/{task.pk}/trigger/")
    assert response.status_code == 302
    job = Job.objects.get()
    assert job.task == "tests.record" and job.kwargs["key"] == "k"
    entry = AuditEntry.objects.get()
    assert entry.action == "schedule.trigger" and entry.details["job"] == job.pk
    assert "SENTINEL-pw" not in str(entry.details)


def test_viewer_gets_403_on_every_schedule_action(schedules, client_for):
    flow = schedules["flow"]
    viewer = client_for("viewer")
    for verb in ("pause", "resume", "trigger"):
        assert csrf_post(viewer, f"/dashboard/schedules/{flow.pk}/{verb}/").status_code == 403
    flow.refresh_from_db()
    assert flow.enabled and not WorkflowRun.objects.exists()
    assert not AuditEntry.objects.exists()


def test_schedule_actions_refuse_get_and_missing_csrf(schedules, client_for):
    flow = schedules["flow"]
    operator = client_for("operator")
    for verb in ("pause", "resume", "trigger"):
        assert operator.get(f"/dashboard/schedules/{flow.pk}/{verb}/").status_code == 405
        assert operator.post(f"/dashboard/schedules/{flow.pk}/{verb}/").status_code == 403
    flow.refresh_from_db()
    assert flow.enabled and not AuditEntry.objects.exists()


def test_scoped_operator_acts_only_on_schedules_of_its_workflow(schedules, client_for,
                                                                tmp_path):
    write_workflows(tmp_path / "mine", team_a=TEAM_A.replace(
        "    steps:", "    schedule: {interval: 600}\n    steps:"))
    mine = Schedule.objects.get(name="team-a-flow")
    scoped = client_for("scoped")
    html = scoped.get("/dashboard/schedules/").content.decode()
    assert "Trigger now" in row(html, mine)
    assert "Trigger now" not in row(html, schedules["flow"])
    assert "Trigger now" not in row(html, schedules["task"])
    for target in (schedules["flow"], schedules["task"]):
        for verb in ("pause", "trigger"):
            assert csrf_post(scoped, f"/dashboard/schedules/{target.pk}/{verb}/"
                             ).status_code == 403
    assert not AuditEntry.objects.exists()
    assert csrf_post(scoped, f"/dashboard/schedules/{mine.pk}/pause/").status_code == 302
    mine.refresh_from_db()
    assert not mine.enabled
    assert list(AuditEntry.objects.values_list("action", "actor")) == [
        ("schedule.pause", "scoped")]
