"""API clients for every role, and a world of jobs, runs and schedules to call the API on.

Users come from the dashboard's fixtures (viewer, operator, admin, and `scoped`: an operator
limited to queue "team-a" / workflow "team-a-flow" who sees other work read-only), plus
`norole`, a user without any Relay role.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from dashboard.models import ApiToken
from queues import enqueue
from queues.models import Job, Worker
from scheduler import engine
from scheduler.models import Schedule
from tests.dashboard.conftest import users  # noqa: F401 -- the dashboard's role fixture
from tests.dashboard.test_runs import OTHER, write_workflows
from tests.jobs import dead_letter, run, worker

ROLES = ("anonymous", "norole", "viewer", "operator", "admin", "scoped")

# team-a-flow with a schedule, so the scoped operator has a schedule of its own.
TEAM_A = """
    name: team-a-flow
    description: Team A's two steps.
    schedule:
      cron: "0 3 * * *"
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
def all_users(users) -> dict[str, User | None]:  # noqa: F811
    return {**users, "norole": User.objects.create_user("norole", password="pw")}


@pytest.fixture
def api_for(all_users):
    """api_for("operator") -> an APIClient sending that user's bearer token (anonymous: no
    credentials). api_for("operator", session=True): logged in instead, CSRF enforced."""
    def make(role: str, *, session: bool = False) -> APIClient:
        client = APIClient(enforce_csrf_checks=True)
        user = all_users[role]
        if user is None:
            return client
        if session:
            client.force_login(user)
        else:
            _, raw = ApiToken.issue(user, f"{role} tests")
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return client

    return make


@dataclass
class World:
    dead: Job  # dead letter, queue default
    team_dead: Job  # dead letter, queue team-a
    waiting: Job  # scheduled in an hour, queue default
    team_waiting: Job  # scheduled in an hour, queue team-a
    done: Job  # succeeded, queue default
    run: Any  # running run of other-flow
    failed_run: Any  # failed run of other-flow
    team_run: Any  # running run of team-a-flow
    team_failed_run: Any  # cancelled run of team-a-flow (rerunnable)
    schedule: Schedule  # other-flow's schedule
    team_schedule: Schedule  # team-a-flow's schedule
    worker: Worker  # serves default
    team_worker: Worker  # serves team-a


@pytest.fixture
def world(all_users, tmp_path) -> World:
    write_workflows(tmp_path / "wf", team_a=TEAM_A, other=OTHER)
    failed_run = engine.start_run("other-flow", {"source": "x"})
    run(failed_run.steps.get(step_id="fetch").job, error="fetch broke", retryable=False)
    engine.sweep()
    failed_run.refresh_from_db()
    assert failed_run.state == "failed"
    team_failed_run = engine.cancel_run(engine.start_run("team-a-flow"), by="tests")
    return World(
        dead=dead_letter("tests.fail", error="disk full on /var"),
        team_dead=dead_letter("tests.fail", error="team a broke", queue="team-a"),
        waiting=enqueue("tests.record", "later", delay=3600),
        team_waiting=enqueue("tests.record", "later", delay=3600, queue="team-a"),
        done=run(enqueue("tests.record", "done", api_key="s3cret-value"), output="ok"),
        run=engine.start_run("other-flow", {"source": "y"}),
        failed_run=failed_run,
        team_run=engine.start_run("team-a-flow"),
        team_failed_run=team_failed_run,
        schedule=Schedule.objects.get(target="other-flow"),
        team_schedule=Schedule.objects.get(target="team-a-flow"),
        worker=worker("api-default", queues=["default"]),
        team_worker=worker("api-team", queues=["team-a"]),
    )
