"""Operator paths outside the engine tests: the admin actions on runs and schedules, the
`relay_workflows start` command, and the Git commit recorded with a version."""

from __future__ import annotations

import subprocess
import textwrap
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from queues.models import Job, JobState
from scheduler import engine, firing
from scheduler.definitions import sync
from scheduler.models import RunState, Schedule, WorkflowDefinition, WorkflowRun

ONE_STEP = """
    name: one
    input:
      schema: {type: object, properties: {key: {type: string}}}
    steps:
      - id: only
        task: tests.record
        input: {key: "${{ input.key }}"}
"""


@pytest.fixture
def one(db, tmp_path):
    (tmp_path / "one.yaml").write_text(textwrap.dedent(ONE_STEP))
    sync.apply(tmp_path)
    return tmp_path


@pytest.fixture
def admin_client(client, db):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


def test_admin_cancel_and_rerun_go_through_the_engine(one, admin_client):
    run = engine.start_run("one", {"key": "k"})
    response = admin_client.post("/admin/scheduler/workflowrun/", {
        "action": "cancel_runs", "_selected_action": [run.pk]}, follow=True)
    assert response.status_code == 200
    run.refresh_from_db()
    assert run.state == RunState.CANCELLED and "cancelled by root" in run.error
    assert Job.objects.get().state == JobState.CANCELLED
    admin_client.post("/admin/scheduler/workflowrun/", {
        "action": "rerun_runs", "_selected_action": [run.pk]})
    run.refresh_from_db()
    assert run.state == RunState.RUNNING and run.reruns == 1
    assert Job.objects.filter(state=JobState.SCHEDULED).count() == 1


def test_admin_pause_resume_and_trigger_a_schedule(one, admin_client):
    now = firing.now()
    schedule = Schedule.objects.create(
        name="every-minute", kind="cron", cron="* * * * *", target_kind="workflow",
        target="one", input={"key": "scheduled"}, next_fire_at=now - timedelta(hours=2))
    url = "/admin/scheduler/schedule/"
    admin_client.post(url, {"action": "pause", "_selected_action": [schedule.pk]})
    schedule.refresh_from_db()
    assert not schedule.enabled
    assert firing.fire_due().fired == 0  # paused: nothing fires

    admin_client.post(url, {"action": "resume", "_selected_action": [schedule.pk]})
    schedule.refresh_from_db()
    # Resumed from now: the two hours it was paused are not run.
    assert schedule.enabled and now < schedule.next_fire_at <= now + timedelta(minutes=1, seconds=5)

    admin_client.post(url, {"action": "trigger", "_selected_action": [schedule.pk]})
    [run] = WorkflowRun.objects.all()
    assert run.input == {"key": "scheduled"} and run.schedule == schedule
    assert run.triggered_by == "root via schedule every-minute"
    assert not schedule.firings.exists()  # "run now" is not a due time


def test_admin_refuses_a_schedule_with_a_bad_cron_or_target(one, admin_client):
    response = admin_client.post("/admin/scheduler/schedule/add/", {
        "name": "bad", "kind": "cron", "cron": "61 * * * *", "timezone": "Mars/Base",
        "target_kind": "task", "target": "os.system", "input": "{}", "misfire_policy": "skip",
        "misfire_grace": 60, "overlap_policy": "allow", "jitter": 0, "enabled": "on",
        "firings-TOTAL_FORMS": 0, "firings-INITIAL_FORMS": 0,
    })
    assert response.status_code == 200  # the form again, with errors
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"cron", "timezone", "target"}
    assert not Schedule.objects.exists()


def test_relay_workflows_start(one):
    out = StringIO()
    call_command("relay_workflows", "start", "one", "--input", '{"key": "cli"}', stdout=out)
    run = WorkflowRun.objects.get()
    assert f"Started run #{run.pk} of one v1" in out.getvalue()
    assert run.input == {"key": "cli"} and run.triggered_by.startswith("relay_workflows start")
    with pytest.raises(CommandError, match="key: 5 is not of type 'string'"):
        call_command("relay_workflows", "start", "one", "--input", '{"key": 5}')
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("relay_workflows", "start", "one", "--input", "{")
    with pytest.raises(CommandError, match="No workflow named 'nope'"):
        call_command("relay_workflows", "start", "nope")
    assert WorkflowRun.objects.count() == 1


def test_a_version_applied_from_a_git_checkout_records_its_commit(db, tmp_path):
    def git(*args):
        return subprocess.run(["git", "-C", str(tmp_path), *args], check=True,
                              capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "one.yaml").write_text(textwrap.dedent(ONE_STEP))
    git("add", "one.yaml")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "one")
    sync.apply(tmp_path, created_by="ci")
    definition = WorkflowDefinition.objects.get()
    assert definition.git_commit == git("rev-parse", "HEAD") and len(definition.git_commit) == 40
    assert definition.created_by == "ci"
