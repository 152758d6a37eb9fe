"""The Django admin: the audit log cannot be changed (superusers included), operator actions go
through dashboard.actions (same permissions, same audit entries, source "admin"), and
secrets in arguments, inputs and outputs appear on no admin page."""

from __future__ import annotations

import textwrap

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from dashboard import actions
from dashboard.access import Access
from dashboard.masking import MASK
from dashboard.models import AuditEntry, BulkOperation, RoleScope
from queues import enqueue
from queues.models import DeadLetter, Execution, Job, JobState
from scheduler import engine
from scheduler.definitions import sync
from scheduler.models import RunState, Schedule, StepRun, WorkflowRun
from tests.dashboard.conftest import csrf_post
from tests.jobs import dead_letter, run

SENTINEL = "SENTINEL-ADMIN"

SECRET_FLOW = """
    name: secret-flow
    input:
      schema:
        type: object
        properties: {api_key: {type: string}, customer: {type: integer}}
    steps:
      - id: call
        task: tests.step
        input: {name: call, api_key: "${{ input.api_key }}"}
      - id: after
        task: tests.record
        needs: [call]
        input: {key: done}
"""


@pytest.fixture
def root(db) -> Client:
    user = User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def entry(**kwargs) -> AuditEntry:
    values = {"actor": "operator", "action": "job.retry", "object_type": "job",
              "object_ids": ["1"], "reason": "why", "details": {"token": SENTINEL}}
    values.update(kwargs)
    return AuditEntry.objects.create(**values)


# -- the audit log is append-only in the admin ---------------------------------------------------

def test_audit_entry_change_view_has_no_save_button_and_masks_details(root):
    e = entry()
    response = root.get(f"/admin/dashboard/auditentry/{e.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="_save"' not in html and 'name="_continue"' not in html
    assert "deletelink" not in html
    assert SENTINEL not in html and MASK in html
    changelist = root.get("/admin/dashboard/auditentry/").content.decode()
    assert "job.retry" in changelist and "delete_selected" not in changelist
    assert SENTINEL not in changelist
    assert "/admin/dashboard/auditentry/add/" not in changelist


def test_audit_entry_cannot_be_changed_added_or_deleted_even_by_a_superuser(root):
    e = entry()
    change = csrf_post(root, f"/admin/dashboard/auditentry/{e.pk}/change/",
                       {"actor": "someone-else", "reason": "rewritten"})
    assert change.status_code == 403
    assert root.get(f"/admin/dashboard/auditentry/{e.pk}/delete/").status_code == 403
    delete = csrf_post(root, f"/admin/dashboard/auditentry/{e.pk}/delete/", {"post": "yes"})
    assert delete.status_code == 403
    bulk = csrf_post(root, "/admin/dashboard/auditentry/",
                     {"action": "delete_selected", "_selected_action": [e.pk], "post": "yes"})
    assert bulk.status_code in (200, 302)
    assert root.get("/admin/dashboard/auditentry/add/").status_code == 403
    assert csrf_post(root, "/admin/dashboard/auditentry/add/",
                     {"actor": "x", "action": "job.retry"}).status_code == 403
    e.refresh_from_db()
    assert (e.actor, e.reason) == ("operator", "why")
    assert AuditEntry.objects.count() == 1


def test_audit_admin_filters_and_search(root):
    entry(action="job.cancel", actor="alice", source="admin")
    entry(action="queue.pause", actor="bob", object_type="queue", object_ids=["reports"])
    html = root.get("/admin/dashboard/auditentry/?action=job.cancel").content.decode()
    assert "alice" in html and "bob" not in html
    html = root.get("/admin/dashboard/auditentry/?q=reports").content.decode()
    assert "bob" in html and "alice" not in html
    html = root.get("/admin/dashboard/auditentry/?source=admin").content.decode()
    assert "alice" in html and "bob" not in html


def test_bulk_operations_and_queue_pauses_are_read_only(root):
    operation = BulkOperation.objects.create(action="retry", max_job_id=10,
                                             filter={"arg": [f"args.api_key={SENTINEL}"]})
    response = root.get(f"/admin/dashboard/bulkoperation/{operation.pk}/change/")
    html = response.content.decode()
    assert response.status_code == 200 and 'name="_save"' not in html
    assert SENTINEL not in html and f"args.api_key={MASK}" in html
    assert csrf_post(root, f"/admin/dashboard/bulkoperation/{operation.pk}/change/",
                     {"state": "done"}).status_code == 403
    assert root.get("/admin/queues/queuepause/add/").status_code == 403


# -- actions go through dashboard.actions ----------------------------------------------------------

def test_admin_retry_of_a_dead_letter_retries_the_job_and_writes_an_audit_entry(root):
    job = dead_letter(error="boom")
    letter = DeadLetter.objects.get(job=job)
    response = csrf_post(root, "/admin/queues/deadletter/", {
        "action": "retry_dead_letters", "_selected_action": [letter.pk]}, REMOTE_ADDR="10.7.7.7")
    assert response.status_code == 302
    job.refresh_from_db()
    letter.refresh_from_db()
    assert job.state == JobState.SCHEDULED and letter.resolution == "retried"
    e = AuditEntry.objects.get()
    assert (e.actor, e.action, e.object_ids, e.source, e.ip) == (
        "root", "job.retry", [str(job.pk)], "admin", "10.7.7.7")


def test_admin_job_actions_write_one_entry_per_job(root):
    dead = [dead_letter(error="boom") for _ in range(2)]
    waiting = enqueue("tests.record", key="w")
    done = run(enqueue("tests.record", key="d"), output="d")
    url = "/admin/queues/job/"
    csrf_post(root, url, {"action": "retry_jobs", "_selected_action": [j.pk for j in dead]})
    csrf_post(root, url, {"action": "cancel_jobs", "_selected_action": [waiting.pk]})
    csrf_post(root, url, {"action": "rerun_jobs", "_selected_action": [done.pk]})
    assert [j.state for j in Job.objects.filter(pk__in=[d.pk for d in dead])] == [
        JobState.SCHEDULED] * 2
    waiting.refresh_from_db()
    assert waiting.state == JobState.CANCELLED
    rerun = Job.objects.get(meta__rerun_of=done.pk)
    entries = list(AuditEntry.objects.order_by("id").values_list("action", "object_ids",
                                                                 "source"))
    assert entries == [
        ("job.retry", [str(dead[0].pk)], "admin"), ("job.retry", [str(dead[1].pk)], "admin"),
        ("job.cancel", [str(waiting.pk)], "admin"),
        ("job.rerun", [str(done.pk), str(rerun.pk)], "admin"),
    ]
    # A refused action (a waiting job cannot be retried) changes nothing and records nothing.
    other = enqueue("tests.record", key="o")
    response = csrf_post(root, url, {"action": "retry_jobs", "_selected_action": [other.pk]},
                         follow=True)
    assert AuditEntry.objects.count() == 4
    assert f"#{other.pk} tests.record (scheduled): " in response.content.decode()
    discard = dead_letter(error="x")
    csrf_post(root, url, {"action": "discard_jobs", "_selected_action": [discard.pk]})
    assert DeadLetter.objects.get(job=discard).resolution == "discarded"
    assert AuditEntry.objects.latest("id").action == "job.discard"


def test_admin_actions_follow_the_dashboard_permissions(client_for, users):
    job = dead_letter(error="boom")
    team_job = dead_letter(error="boom", queue="team-a")
    viewer = client_for("viewer")  # staff, view permissions only
    page = viewer.get("/admin/queues/job/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "retry_jobs" not in html and "cancel_jobs" not in html
    csrf_post(viewer, "/admin/queues/job/", {"action": "retry_jobs",
                                             "_selected_action": [job.pk]})
    job.refresh_from_db()
    assert job.state == JobState.DEAD_LETTER and not AuditEntry.objects.exists()

    scoped = client_for("scoped")  # operator on team-a only
    assert "retry_jobs" in scoped.get("/admin/queues/job/").content.decode()
    response = csrf_post(scoped, "/admin/queues/job/", {
        "action": "retry_jobs", "_selected_action": [job.pk, team_job.pk]}, follow=True)
    job.refresh_from_db()
    team_job.refresh_from_db()
    assert job.state == JobState.DEAD_LETTER and team_job.state == JobState.SCHEDULED
    assert "You may not retry" in response.content.decode()
    [e] = AuditEntry.objects.all()
    assert (e.actor, e.object_ids, e.source) == ("scoped", [str(team_job.pk)], "admin")


def test_admin_lists_hide_what_a_hidden_scope_may_not_see(client, users):
    mine = dead_letter(error="boom", queue="team-a")
    other = dead_letter(error="boom", queue="default")
    group = Group.objects.create(name="Team A (hidden)")
    group.permissions.set(Group.objects.get(name="Relay operator").permissions.all())
    RoleScope.objects.create(group=group, queues=["team-a"], others=RoleScope.Others.HIDDEN)
    user = User.objects.create_user("hidden", password="pw", is_staff=True)
    user.groups.add(group)
    entry(details={"queue": "default"})
    client.force_login(user)
    html = client.get("/admin/queues/job/").content.decode()
    assert f"/admin/queues/job/{mine.pk}/change/" in html
    assert f"/admin/queues/job/{other.pk}/change/" not in html
    assert client.get(f"/admin/queues/job/{other.pk}/change/").status_code == 302  # not found
    html = client.get("/admin/queues/deadletter/").content.decode()
    assert f"#{mine.pk} " in html and f"#{other.pk} " not in html
    assert client.get("/admin/queues/execution/").context["cl"].result_count == 1
    assert client.get("/admin/dashboard/auditentry/").context["cl"].result_count == 0


def test_admin_refuses_selections_larger_than_the_inline_limit(root, settings):
    settings.RELAY = {**settings.RELAY, "BULK_INLINE_LIMIT": 2}
    dead = [dead_letter(error="boom") for _ in range(3)]
    response = csrf_post(root, "/admin/queues/job/", {
        "action": "retry_jobs", "_selected_action": [j.pk for j in dead]}, follow=True)
    assert "Select at most 2" in response.content.decode()
    assert not AuditEntry.objects.exists()
    assert Job.objects.filter(state=JobState.DEAD_LETTER).count() == 3


@pytest.fixture
def secret_flow(db, tmp_path):
    (tmp_path / "secret-flow.yaml").write_text(textwrap.dedent(SECRET_FLOW))
    sync.apply(tmp_path)


def test_admin_schedule_actions_and_masked_input(root, secret_flow):
    schedule = Schedule.objects.create(
        name="nightly", kind="cron", cron="0 2 * * *", target_kind="workflow",
        target="secret-flow", input={"api_key": SENTINEL, "customer": 7},
        next_fire_at=None)
    url = "/admin/scheduler/schedule/"
    csrf_post(root, url, {"action": "pause", "_selected_action": [schedule.pk]})
    csrf_post(root, url, {"action": "resume", "_selected_action": [schedule.pk]})
    csrf_post(root, url, {"action": "trigger", "_selected_action": [schedule.pk]})
    assert list(AuditEntry.objects.order_by("id").values_list("action", "source")) == [
        ("schedule.pause", "admin"), ("schedule.resume", "admin"),
        ("schedule.trigger", "admin")]
    run_ = WorkflowRun.objects.get()
    assert run_.input["api_key"] == SENTINEL  # the stored secret was used, not the mask

    change = root.get(f"{url}{schedule.pk}/change/").content.decode()
    assert SENTINEL not in change and MASK in change
    # Saving the form with the mask left in place keeps the stored secret.
    form = {
        "name": "nightly", "kind": "cron", "cron": "0 3 * * *", "interval": "",
        "timezone": "UTC", "target_kind": "workflow", "target": "secret-flow",
        "input": f'{{"api_key": "{MASK}", "customer": 8}}', "enabled": "on",
        "misfire_policy": "run_once", "misfire_grace": 60, "overlap_policy": "allow",
        "jitter": 0, "firings-TOTAL_FORMS": 0, "firings-INITIAL_FORMS": 0,
    }
    response = csrf_post(root, f"{url}{schedule.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    schedule.refresh_from_db()
    assert schedule.input == {"api_key": SENTINEL, "customer": 8} and schedule.cron == "0 3 * * *"
    # A new schedule cannot keep a mask it has no value for.
    form.update(name="other", input=f'{{"api_key": "{MASK}"}}')
    response = csrf_post(root, f"{url}add/", form)
    assert response.status_code == 200 and "Type the secret values again" in \
        response.content.decode()


def test_admin_run_actions_cancel_and_rerun(root, secret_flow):
    run_ = engine.start_run("secret-flow", {"api_key": SENTINEL})
    csrf_post(root, "/admin/scheduler/workflowrun/", {
        "action": "cancel_runs", "_selected_action": [run_.pk]})
    run_.refresh_from_db()
    assert run_.state == RunState.CANCELLED
    csrf_post(root, "/admin/scheduler/workflowrun/", {
        "action": "rerun_runs", "_selected_action": [run_.pk]})
    run_.refresh_from_db()
    assert run_.state == RunState.RUNNING and run_.reruns == 1
    assert list(AuditEntry.objects.order_by("id").values_list("action", "source")) == [
        ("run.cancel", "admin"), ("run.rerun", "admin")]


# -- secrets appear on no admin page ----------------------------------------------------------

def test_the_sentinel_appears_on_no_admin_page(root, secret_flow):
    job = dead_letter(error="boom", api_key=SENTINEL, nested={"password": SENTINEL})
    ok = run(enqueue("tests.record", key="k", token=SENTINEL), output={"token": SENTINEL})
    run_ = engine.start_run("secret-flow", {"api_key": SENTINEL, "customer": 1})
    step = StepRun.objects.get(run=run_, step_id="call")
    step_job = Job.objects.get(pk=step.job_id)
    run(step_job, output={"secret": SENTINEL})  # the step's output holds it too
    actor = actions.Actor(User.objects.get(username="root"),
                          Access(User.objects.get(username="root")), "127.0.0.1", "dashboard")
    actions.enqueue_task(actor, "tests.record", {"key": "x", "api_key": SENTINEL})
    letter = DeadLetter.objects.get(job=job)
    pages = [
        "/admin/queues/job/", f"/admin/queues/job/{job.pk}/change/",
        f"/admin/queues/job/{ok.pk}/change/", f"/admin/queues/job/{step_job.pk}/change/",
        "/admin/queues/execution/",
        f"/admin/queues/execution/{Execution.objects.get(job=ok).pk}/change/",
        f"/admin/queues/execution/{Execution.objects.get(job=job).pk}/change/",
        "/admin/queues/deadletter/", f"/admin/queues/deadletter/{letter.pk}/change/",
        "/admin/scheduler/workflowrun/", f"/admin/scheduler/workflowrun/{run_.pk}/change/",
        "/admin/scheduler/steprun/", f"/admin/scheduler/steprun/{step.pk}/change/",
        "/admin/dashboard/auditentry/",
        f"/admin/dashboard/auditentry/{AuditEntry.objects.get().pk}/change/",
        "/admin/queues/job/?q=tests.record", "/admin/queues/job/?state=dead_letter",
    ]
    for path in pages:
        response = root.get(path)
        assert response.status_code == 200, path
        assert SENTINEL not in response.content.decode(), path
    # The masked values are there (the pages do show arguments, results and inputs).
    job_page = root.get(f"/admin/queues/job/{job.pk}/change/").content.decode()
    assert MASK in job_page and "&quot;nested&quot;" in job_page
    assert MASK in root.get(f"/admin/scheduler/steprun/{step.pk}/change/").content.decode()
    run_page = root.get(f"/admin/scheduler/workflowrun/{run_.pk}/change/").content.decode()
    assert MASK in run_page and "customer" in run_page


# -- role scopes ----------------------------------------------------------------------------------

def test_role_scope_is_edited_inline_on_the_group(root):
    group = Group.objects.create(name="Team B")
    page = root.get(f"/admin/auth/group/{group.pk}/change/")
    assert page.status_code == 200 and "relay_scope" in page.content.decode()
    response = csrf_post(root, f"/admin/auth/group/{group.pk}/change/", {
        "name": "Team B", "relay_scope-TOTAL_FORMS": 1, "relay_scope-INITIAL_FORMS": 0,
        "relay_scope-MIN_NUM_FORMS": 0, "relay_scope-MAX_NUM_FORMS": 1,
        "relay_scope-0-queues": "team-b, billing", "relay_scope-0-workflows": "b-flow",
        "relay_scope-0-others": "hidden",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    scope = RoleScope.objects.get(group=group)
    assert (scope.queues, scope.workflows, scope.others) == (["team-b", "billing"],
                                                            ["b-flow"], "hidden")
    listing = root.get("/admin/dashboard/rolescope/").content.decode()
    assert "team-b, billing" in listing


def test_role_scopes_need_the_change_permission(client_for, users):
    scope = RoleScope.objects.get()
    operator = client_for("operator")
    assert operator.get(f"/admin/dashboard/rolescope/{scope.pk}/change/").status_code == 403
    admin = client_for("admin")  # Relay admin: may manage scopes
    response = csrf_post(admin, f"/admin/dashboard/rolescope/{scope.pk}/change/", {
        "group": scope.group_id, "queues": "team-a, team-a2", "workflows": "",
        "others": "read"})
    assert response.status_code == 302
    scope.refresh_from_db()
    assert scope.queues == ["team-a", "team-a2"] and scope.workflows == []


@pytest.mark.django_db
def test_the_migrated_roles_hold_exactly_their_declared_permissions():
    """0002_roles ran before the token and alert models existed; 0004 adds their permissions,
    so a fresh database ends with every role complete."""
    from dashboard.roles import ROLE_PERMISSIONS

    for name, perms in ROLE_PERMISSIONS.items():
        held = set(Group.objects.get(name=name).permissions.values_list(
            "content_type__app_label", "codename"))
        assert held == set(perms), name
    admin = set(ROLE_PERMISSIONS["Relay admin"])
    assert ("scheduler", "change_alertchannel") in admin
    assert ("scheduler", "view_alertchannel") not in set(ROLE_PERMISSIONS["Relay operator"])
    assert ("dashboard", "add_apitoken") in set(ROLE_PERMISSIONS["Relay viewer"])
