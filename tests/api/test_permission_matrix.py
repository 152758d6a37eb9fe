"""Every API route, for every role: anonymous, a user without a Relay role, viewer, operator,
admin, and an operator scoped to queue "team-a" / workflow "team-a-flow" (others read-only).

Reads answer 200 to every role (anonymous: 401, no role: 403). Actions are refused (401
anonymous, 403 otherwise) and change nothing and record nothing for anyone not permitted;
when performed they write exactly one audit entry, the same one the dashboard writes, with
source "api". A test checks that this file knows every API route, so a new endpoint cannot
slip in untested.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from dashboard.api import urls
from dashboard.models import AuditEntry
from queues.models import DeadLetter, Job, QueuePause
from scheduler.models import Schedule, StepRun, WorkflowRun
from tests.api.conftest import ROLES, World

# Reads: (route name, method) -> path.
READS: dict[tuple[str, str], Callable[[World], str]] = {
    ("job-list", "get"): lambda w: "/api/v1/jobs/",
    ("job-detail", "get"): lambda w: f"/api/v1/jobs/{w.dead.pk}/",
    ("execution-list", "get"): lambda w: "/api/v1/executions/",
    ("execution-detail", "get"): lambda w: f"/api/v1/executions/{_execution(w)}/",
    ("dead-letter-list", "get"): lambda w: "/api/v1/dead-letters/",
    ("dead-letter-detail", "get"): lambda w: f"/api/v1/dead-letters/{_letter(w.dead)}/",
    ("workflow-list", "get"): lambda w: "/api/v1/workflows/",
    ("workflow-detail", "get"): lambda w: "/api/v1/workflows/other-flow/",
    ("workflow-versions", "get"): lambda w: "/api/v1/workflows/other-flow/versions/",
    ("run-list", "get"): lambda w: "/api/v1/runs/",
    ("run-detail", "get"): lambda w: f"/api/v1/runs/{w.run.pk}/",
    ("schedule-list", "get"): lambda w: "/api/v1/schedules/",
    ("schedule-detail", "get"): lambda w: f"/api/v1/schedules/{w.schedule.pk}/",
    ("worker-list", "get"): lambda w: "/api/v1/workers/",
    ("worker-detail", "get"): lambda w: f"/api/v1/workers/{w.worker.pk}/",
}


def _execution(w: World) -> int:
    return w.dead.executions.get().pk


def _letter(job: Job) -> int:
    return job.dead_letters.get().pk


@dataclass
class Act:
    path: Callable[[World], str]
    body: Callable[[World], dict] = lambda w: {}
    status: int = 200
    audit: str = ""  # the audit entry's action
    prepare: Callable[[World], None] = lambda w: None
    # The same action on the scoped operator's own queue / workflow.
    team_path: Callable[[World], str] | None = None
    team_body: Callable[[World], dict] | None = None
    extra: dict = field(default_factory=dict)


def _pause_schedules(w: World) -> None:
    Schedule.objects.filter(pk__in=[w.schedule.pk, w.team_schedule.pk]).update(enabled=False)


ACTS: dict[tuple[str, str], Act] = {
    ("job-list", "post"): Act(
        lambda w: "/api/v1/jobs/", lambda w: {"task": "tests.record", "kwargs": {"key": "api"}},
        status=201, audit="task.enqueue", team_path=lambda w: "/api/v1/jobs/",
        team_body=lambda w: {"task": "tests.record", "queue": "team-a"}),
    ("job-cancel", "post"): Act(
        lambda w: f"/api/v1/jobs/{w.waiting.pk}/cancel/", audit="job.cancel",
        team_path=lambda w: f"/api/v1/jobs/{w.team_waiting.pk}/cancel/"),
    ("job-retry", "post"): Act(
        lambda w: f"/api/v1/jobs/{w.dead.pk}/retry/", audit="job.retry",
        team_path=lambda w: f"/api/v1/jobs/{w.team_dead.pk}/retry/"),
    ("dead-letter-retry", "post"): Act(
        lambda w: f"/api/v1/dead-letters/{_letter(w.dead)}/retry/", audit="job.retry",
        team_path=lambda w: f"/api/v1/dead-letters/{_letter(w.team_dead)}/retry/"),
    ("dead-letter-discard", "post"): Act(
        lambda w: f"/api/v1/dead-letters/{_letter(w.dead)}/discard/", audit="job.discard",
        team_path=lambda w: f"/api/v1/dead-letters/{_letter(w.team_dead)}/discard/"),
    ("run-list", "post"): Act(
        lambda w: "/api/v1/runs/", lambda w: {"workflow": "other-flow",
                                              "input": {"source": "api"}},
        status=201, audit="workflow.start", team_path=lambda w: "/api/v1/runs/",
        team_body=lambda w: {"workflow": "team-a-flow"}),
    ("run-cancel", "post"): Act(
        lambda w: f"/api/v1/runs/{w.run.pk}/cancel/", audit="run.cancel",
        team_path=lambda w: f"/api/v1/runs/{w.team_run.pk}/cancel/"),
    ("run-rerun", "post"): Act(
        lambda w: f"/api/v1/runs/{w.failed_run.pk}/rerun/", audit="run.rerun",
        team_path=lambda w: f"/api/v1/runs/{w.team_failed_run.pk}/rerun/"),
    ("schedule-pause", "post"): Act(
        lambda w: f"/api/v1/schedules/{w.schedule.pk}/pause/", audit="schedule.pause",
        team_path=lambda w: f"/api/v1/schedules/{w.team_schedule.pk}/pause/"),
    ("schedule-resume", "post"): Act(
        lambda w: f"/api/v1/schedules/{w.schedule.pk}/resume/", audit="schedule.resume",
        prepare=_pause_schedules,
        team_path=lambda w: f"/api/v1/schedules/{w.team_schedule.pk}/resume/"),
    ("schedule-trigger", "post"): Act(
        lambda w: f"/api/v1/schedules/{w.schedule.pk}/trigger/", status=201,
        audit="schedule.trigger",
        team_path=lambda w: f"/api/v1/schedules/{w.team_schedule.pk}/trigger/"),
}


def api_routes() -> set[tuple[str, str]]:
    """(route name, method) for every route the API's router serves."""
    routes = set()
    for pattern in urls.router.urls:
        for method in pattern.callback.actions:
            if method != "head":  # GET's twin
                routes.add((pattern.name, method))
    return routes


@contextmanager
def rolled_back():
    """Each action runs on a fresh copy of the world: its changes are rolled back."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def snapshot() -> tuple:
    return (
        list(Job.objects.order_by("id").values_list("id", "state", "cancel_requested_at")),
        list(DeadLetter.objects.order_by("id").values_list("id", "resolution")),
        list(WorkflowRun.objects.order_by("id").values_list("id", "state", "reruns")),
        list(StepRun.objects.order_by("id").values_list("id", "state")),
        list(Schedule.objects.order_by("id").values_list("id", "enabled")),
        sorted(QueuePause.objects.values_list("queue", flat=True)),
    )


def test_the_matrix_knows_every_api_route():
    assert api_routes() == set(READS) | set(ACTS)


@pytest.mark.parametrize("role", ROLES)
def test_reads(role, world, api_for):
    client = api_for(role)
    for route, path in READS.items():
        response = client.get(path(world))
        if role == "anonymous":
            assert response.status_code == 401, route
            assert response["WWW-Authenticate"].startswith("Bearer"), route
        elif role == "norole":
            assert response.status_code == 403, route
        else:
            assert response.status_code == 200, (route, response.status_code, response.content)
        assert response["Content-Type"] == "application/json", route
        assert "detail" not in response.json() or response.status_code != 200, route


@pytest.mark.parametrize("role", ["anonymous", "norole", "viewer", "scoped"])
def test_actions_refused_change_nothing_and_record_nothing(role, world, api_for):
    client = api_for(role)
    for route, act in ACTS.items():
        with rolled_back():
            act.prepare(world)
            before = snapshot()
            jobs = Job.objects.count()
            response = client.post(act.path(world), act.body(world), format="json")
            expected = 401 if role == "anonymous" else 403
            assert response.status_code == expected, (route, response.status_code,
                                                      response.content)
            assert set(response.json()) == {"detail"}, route
            assert snapshot() == before and Job.objects.count() == jobs, route
            assert not AuditEntry.objects.exists(), route


@pytest.mark.parametrize("role", ["operator", "admin"])
def test_actions_permitted_write_exactly_one_audit_entry(role, world, api_for, all_users):
    client = api_for(role)
    for route, act in ACTS.items():
        with rolled_back():
            act.prepare(world)
            before = snapshot()
            response = client.post(act.path(world), {**act.body(world), "reason": "from api"},
                                   format="json", REMOTE_ADDR="10.9.8.7")
            assert response.status_code == act.status, (route, response.status_code,
                                                        response.content)
            assert snapshot() != before or route == ("job-list", "post"), route
            entries = list(AuditEntry.objects.all())
            assert len(entries) == 1, (route, [e.action for e in entries])
            entry = entries[0]
            assert (entry.action, entry.actor, entry.actor_id, entry.ip, entry.source,
                    entry.reason) == (act.audit, role, all_users[role].pk, "10.9.8.7", "api",
                                      "from api"), route
            assert entry.object_ids, route


def test_scoped_operator_acts_on_its_own_team_only(world, api_for):
    scoped = api_for("scoped")
    for route, act in ACTS.items():
        assert act.team_path is not None, route
        with rolled_back():
            act.prepare(world)
            body = (act.team_body or act.body)(world)
            response = scoped.post(act.team_path(world), body, format="json")
            assert response.status_code == act.status, (route, response.status_code,
                                                        response.content)
            assert AuditEntry.objects.get().action == act.audit, route


def test_actions_answer_get_with_405(world, api_for):
    operator = api_for("operator")
    for route, act in ACTS.items():
        if route[0].endswith("-list"):
            continue  # the list's GET is a read
        assert operator.get(act.path(world)).status_code == 405, route


def test_session_calls_need_the_csrf_token(world, api_for):
    """A browser session may read, but a POST without the CSRF token is refused (403) and
    changes nothing; with the token it acts."""
    session = api_for("operator", session=True)
    assert session.get("/api/v1/jobs/").status_code == 200
    path = f"/api/v1/jobs/{world.waiting.pk}/cancel/"
    refused = session.post(path, {}, format="json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert Job.objects.get(pk=world.waiting.pk).state == "scheduled"
    session.get("/accounts/login/")  # sets the csrftoken cookie
    token = session.cookies["csrftoken"].value
    done = session.post(path, {}, format="json", HTTP_X_CSRFTOKEN=token)
    assert done.status_code == 200 and done.json()["state"] == "cancelled"
    assert AuditEntry.objects.get().source == "api"


def test_a_hidden_scope_sees_only_its_own_work(world, api_for, all_users):
    """With others hidden, the scoped operator's lists hold only team-a work and anything
    else is a 404, as if it did not exist."""
    from dashboard.models import RoleScope

    RoleScope.objects.filter(group__name="Team A operators").update(others="hidden")
    scoped = api_for("scoped")
    jobs = scoped.get("/api/v1/jobs/?page_size=200").json()["results"]
    assert jobs and all(j["queue"] == "team-a" or j["meta"].get("workflow") == "team-a-flow"
                        for j in jobs)
    assert {r["workflow"] for r in scoped.get("/api/v1/runs/").json()["results"]} == {
        "team-a-flow"}
    assert [s["target"] for s in scoped.get("/api/v1/schedules/").json()] == ["team-a-flow"]
    assert [w["name"] for w in scoped.get("/api/v1/workflows/").json()] == ["team-a-flow"]
    workers = scoped.get("/api/v1/workers/").json()["results"]
    assert "api-team" in {w["name"] for w in workers}
    assert all(w["queues"] == ["team-a"] for w in workers)
    letters = scoped.get("/api/v1/dead-letters/").json()["results"]
    assert [d["job"] for d in letters] == [world.team_dead.pk]
    executions = scoped.get("/api/v1/executions/").json()["results"]
    assert world.dead.pk not in {e["job"] for e in executions}
    for path in (f"/api/v1/jobs/{world.dead.pk}/", f"/api/v1/runs/{world.run.pk}/",
                 f"/api/v1/schedules/{world.schedule.pk}/", "/api/v1/workflows/other-flow/",
                 f"/api/v1/dead-letters/{_letter(world.dead)}/",
                 f"/api/v1/executions/{_execution(world)}/",
                 f"/api/v1/workers/{world.worker.pk}/"):
        response = scoped.get(path)
        assert response.status_code == 404 and "detail" in response.json(), path
    hidden = scoped.post(f"/api/v1/jobs/{world.dead.pk}/retry/", {}, format="json")
    assert hidden.status_code == 404 and not AuditEntry.objects.exists()


def test_unknown_api_paths_are_json_404(api_for, world):
    for client in (api_for("operator"), APIClient()):
        for path in ("/api/v1/nothing/", "/api/v1/jobs/abc/", "/api/v2/jobs/"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert response.json()["detail"].startswith("No API route"), path
