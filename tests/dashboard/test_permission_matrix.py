"""Every dashboard route, for every role: anonymous, viewer, operator, admin, and an operator
scoped to queue "team-a" / workflow "team-a-flow" (others read-only).

Pages answer 200 (anonymous: sent to log in). Actions are POST-only (GET: 405), need a CSRF
token (403 without), are refused with 403 and no audit entry for anyone not permitted, and
write exactly one audit entry when performed. A test also checks that this file knows every
route in dashboard/urls.py, so a new view cannot slip in untested.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import transaction
from django.urls import get_resolver, reverse

from dashboard.fingerprints import fingerprint
from dashboard.models import AuditEntry, BulkOperation
from queues import enqueue, pause_queue
from queues.models import Job
from scheduler import engine
from scheduler.models import Schedule
from tests.dashboard.conftest import csrf_post
from tests.dashboard.test_runs import OTHER, TEAM_A, write_workflows
from tests.jobs import dead_letter, run

OPERATORS = ("operator", "admin")


@dataclass
class World:
    dead: Job  # dead letter in queue default
    waiting: Job  # scheduled in an hour, queue default
    done: Job  # succeeded, queue default
    team_dead: Job  # dead letter in queue team-a
    run: Any  # running run of other-flow
    failed_run: Any  # failed run of other-flow
    team_run: Any  # running run of team-a-flow
    schedule: Schedule  # other-flow's schedule (enabled)
    operation: BulkOperation


@pytest.fixture
def world(users, tmp_path) -> World:
    write_workflows(tmp_path / "wf", team_a=TEAM_A, other=OTHER)
    failed_run = engine.start_run("other-flow", {"source": "x"})
    fetch = failed_run.steps.get(step_id="fetch")
    run(fetch.job, error="fetch broke", retryable=False)
    engine.sweep()
    failed_run.refresh_from_db()
    assert failed_run.state == "failed"
    operation = BulkOperation.objects.create(action="retry", filter={"state": ["dead_letter"]},
                                             max_job_id=0, state="done")
    return World(
        dead=dead_letter("tests.fail", error="disk full on /var"),
        waiting=enqueue("tests.record", "later", delay=3600),
        done=run(enqueue("tests.record", "done"), output="ok"),
        team_dead=dead_letter("tests.fail", error="team a broke", queue="team-a"),
        run=engine.start_run("other-flow", {"source": "y"}),
        failed_run=failed_run,
        team_run=engine.start_run("team-a-flow"),
        schedule=Schedule.objects.get(target="other-flow"),
        operation=operation,
    )


# Pages: url name -> kwargs from the world.
PAGES: dict[str, Callable[[World], dict]] = {
    "overview": lambda w: {},
    "jobs": lambda w: {},
    "job": lambda w: {"job_id": w.dead.pk},
    "dead-letters": lambda w: {},
    "failures": lambda w: {},
    "runs": lambda w: {},
    "run": lambda w: {"run_id": w.run.pk},
    "workflows": lambda w: {},
    "workflow": lambda w: {"name": "other-flow"},
    "workflow-diff": lambda w: {"name": "other-flow"},
    "schedules": lambda w: {},
    "queues": lambda w: {},
    "workers": lambda w: {},
    "audit": lambda w: {},
    "bulk-operation": lambda w: {"operation_id": w.operation.pk},
}

# Form pages: GET shows a form to whoever may submit it. (url name, kwargs, permission)
FORMS: dict[str, Callable[[World], dict]] = {
    "job-edit-retry": lambda w: {"job_id": w.dead.pk},
    "task-enqueue": lambda w: {},
    "workflow-start": lambda w: {"name": "other-flow"},
}


@dataclass
class Act:
    kwargs: Callable[[World], dict]
    data: Callable[[World], dict]
    prepare: Callable[[World], None] = lambda w: None
    # The same action on an object in the scoped operator's own queue/workflow, if any.
    team_kwargs: Callable[[World], dict] | None = None
    team_data: Callable[[World], dict] | None = None


def _pause_schedule(w: World) -> None:
    Schedule.objects.filter(pk=w.schedule.pk).update(enabled=False)


ACTIONS: dict[str, Act] = {
    "job-cancel": Act(lambda w: {"job_id": w.waiting.pk}, lambda w: {}),
    "job-retry": Act(lambda w: {"job_id": w.dead.pk}, lambda w: {},
                     team_kwargs=lambda w: {"job_id": w.team_dead.pk}),
    "job-discard": Act(lambda w: {"job_id": w.dead.pk}, lambda w: {},
                       team_kwargs=lambda w: {"job_id": w.team_dead.pk}),
    "job-rerun": Act(lambda w: {"job_id": w.done.pk}, lambda w: {}),
    "job-edit-retry": Act(lambda w: {"job_id": w.dead.pk},
                          lambda w: {"args": "[]", "kwargs": '{"message": "fixed"}'}),
    "jobs-bulk": Act(lambda w: {}, lambda w: {"action": "retry", "ids": [w.dead.pk]},
                     team_kwargs=lambda w: {},
                     team_data=lambda w: {"action": "retry", "ids": [w.team_dead.pk]}),
    "task-enqueue": Act(lambda w: {}, lambda w: {"task": "tests.record",
                                                 "kwargs": '{"key": "from the form"}'}),
    "failures-retry": Act(lambda w: {}, lambda w: {
        "fingerprint": fingerprint("tests.fail", w.dead.last_error_type,
                                   w.dead.last_error_message), "window": "7d"}),
    "run-cancel": Act(lambda w: {"run_id": w.run.pk}, lambda w: {},
                      team_kwargs=lambda w: {"run_id": w.team_run.pk}),
    "run-rerun": Act(lambda w: {"run_id": w.failed_run.pk}, lambda w: {}),
    "workflow-start": Act(lambda w: {"name": "other-flow"},
                          lambda w: {"input": '{"source": "matrix"}'},
                          team_kwargs=lambda w: {"name": "team-a-flow"},
                          team_data=lambda w: {"input": "{}"}),
    "schedule-pause": Act(lambda w: {"schedule_id": w.schedule.pk}, lambda w: {}),
    "schedule-resume": Act(lambda w: {"schedule_id": w.schedule.pk}, lambda w: {},
                           prepare=_pause_schedule),
    "schedule-trigger": Act(lambda w: {"schedule_id": w.schedule.pk}, lambda w: {}),
    "queue-pause": Act(lambda w: {"queue": "default"}, lambda w: {},
                       team_kwargs=lambda w: {"queue": "team-a"}),
    "queue-resume": Act(lambda w: {"queue": "default"}, lambda w: {},
                        prepare=lambda w: (pause_queue("default"), pause_queue("team-a")),
                        team_kwargs=lambda w: {"queue": "team-a"}),
}
POST_ONLY = [name for name in ACTIONS if name not in FORMS]


@contextmanager
def rolled_back():
    """Each action runs on a fresh copy of the world: its changes are rolled back."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def test_the_matrix_knows_every_dashboard_route():
    names = {name for name in get_resolver().reverse_dict if isinstance(name, str)}
    routes = {n.split(":", 1)[1] for n in _dashboard_names()}
    assert routes, names
    assert routes == set(PAGES) | set(FORMS) | set(ACTIONS)


def _dashboard_names() -> set[str]:
    from dashboard import urls

    return {f"dashboard:{p.name}" for p in urls.urlpatterns}


@pytest.mark.parametrize("role", ["anonymous", "viewer", "operator", "admin", "scoped"])
def test_pages(role, world, client_for):
    client = client_for(role)
    for name, kwargs in PAGES.items():
        response = client.get(reverse(f"dashboard:{name}", kwargs=kwargs(world)))
        if role == "anonymous":
            assert response.status_code == 302, name
            assert response["Location"].startswith("/accounts/login/"), name
        else:
            assert response.status_code == 200, (name, response.status_code)
            assert "Content-Security-Policy" in response.headers


@pytest.mark.parametrize("role", ["anonymous", "viewer", "operator", "admin", "scoped"])
def test_form_pages(role, world, client_for):
    client = client_for(role)
    for name, kwargs in FORMS.items():
        response = client.get(reverse(f"dashboard:{name}", kwargs=kwargs(world)))
        if role == "anonymous":
            assert response.status_code == 302, name
        elif role == "viewer":
            assert response.status_code == 403, name
        elif role == "scoped" and name != "task-enqueue":
            # Another team's job / workflow: the form is refused, not just its submit.
            assert response.status_code == 403, name
        else:
            assert response.status_code == 200, (name, response.status_code)


@pytest.mark.parametrize("role", ["anonymous", "viewer", "operator", "admin", "scoped"])
def test_actions_answer_get_with_405(role, world, client_for):
    client = client_for(role)
    for name in POST_ONLY:
        url = reverse(f"dashboard:{name}", kwargs=ACTIONS[name].kwargs(world))
        assert client.get(url).status_code == 405, name


def test_actions_without_a_csrf_token_are_refused(world, client_for):
    operator = client_for("operator")
    for name, act in ACTIONS.items():
        with rolled_back():
            act.prepare(world)
            url = reverse(f"dashboard:{name}", kwargs=act.kwargs(world))
            assert operator.post(url, act.data(world)).status_code == 403, name
            assert not AuditEntry.objects.exists(), name


@pytest.mark.parametrize("role", ["anonymous", "viewer", "scoped"])
def test_actions_refused_change_nothing_and_record_nothing(role, world, client_for):
    client = client_for(role)
    for name, act in ACTIONS.items():
        if role == "scoped" and name in ("task-enqueue",):
            continue  # tests.record goes to queue default: refused below with the others
        with rolled_back():
            act.prepare(world)
            before = _snapshot()
            url = reverse(f"dashboard:{name}", kwargs=act.kwargs(world))
            response = csrf_post(client, url, act.data(world))
            if role == "anonymous" and name in FORMS:
                # Form pages send anonymous users to log in, for POST as for GET.
                assert response.status_code == 302, name
                assert response["Location"].startswith("/accounts/login/"), name
            elif role == "scoped" and name in ("failures-retry",):
                # A group spans queues: the scoped operator retries only its own members,
                # here none, so nothing changes and nothing is recorded.
                assert response.status_code in (302, 403), name
            else:
                assert response.status_code == 403, (name, response.status_code)
            assert _snapshot() == before, name
            assert not AuditEntry.objects.exists(), name


def test_scoped_operator_cannot_enqueue_into_another_queue(world, client_for):
    scoped = client_for("scoped")
    before = Job.objects.count()
    response = csrf_post(scoped, reverse("dashboard:task-enqueue"),
                         {"task": "tests.record", "kwargs": "{}"})
    assert response.status_code == 403
    assert Job.objects.count() == before and not AuditEntry.objects.exists()


@pytest.mark.parametrize("role", OPERATORS)
def test_actions_permitted_write_exactly_one_audit_entry(role, world, client_for):
    client = client_for(role)
    for name, act in ACTIONS.items():
        with rolled_back():
            act.prepare(world)
            url = reverse(f"dashboard:{name}", kwargs=act.kwargs(world))
            response = csrf_post(client, url, act.data(world), REMOTE_ADDR="10.9.8.7")
            assert response.status_code in (200, 302), (name, response.status_code)
            entries = list(AuditEntry.objects.all())
            assert len(entries) == 1, (name, [e.action for e in entries])
            assert entries[0].actor == role and entries[0].ip == "10.9.8.7", name


def test_scoped_operator_acts_on_its_own_team_only(world, client_for):
    scoped = client_for("scoped")
    for name, act in ACTIONS.items():
        if act.team_kwargs is None:
            continue
        with rolled_back():
            act.prepare(world)
            url = reverse(f"dashboard:{name}", kwargs=act.team_kwargs(world))
            data = (act.team_data or act.data)(world)
            response = csrf_post(scoped, url, data)
            assert response.status_code in (200, 302), (name, response.status_code)
            assert AuditEntry.objects.count() == 1, name


def _snapshot() -> tuple:
    from queues.models import DeadLetter, QueuePause
    from scheduler.models import StepRun, WorkflowRun

    return (
        list(Job.objects.order_by("id").values_list("id", "state", "kwargs", "run_at")),
        list(DeadLetter.objects.order_by("id").values_list("id", "resolution")),
        list(WorkflowRun.objects.order_by("id").values_list("id", "state", "reruns")),
        list(StepRun.objects.order_by("id").values_list("id", "state")),
        list(Schedule.objects.order_by("id").values_list("id", "enabled")),
        sorted(QueuePause.objects.values_list("queue", flat=True)),
        BulkOperation.objects.count(),
    )
