"""Workflow runs pages: the filtered list, the detail with its step graph, cancel and rerun."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from dashboard.graph import layout
from dashboard.models import AuditEntry
from queues.models import Job, JobState
from scheduler import engine
from scheduler.definitions import Workflow, sync
from scheduler.models import RunState, StepRun, StepState, WorkflowRun
from tests.dashboard.conftest import csrf_post
from tests.jobs import run as run_job

TEAM_A = """
    name: team-a-flow
    description: Team A's two steps.
    steps:
      - id: first
        task: tests.record
        input: {key: first}
      - id: second
        task: tests.record
        needs: [first]
        input: {key: second}
"""

OTHER = """
    # Another team's workflow: a group, a schema, a schedule.
    name: other-flow
    description: Fetch, check in parallel, publish.
    input:
      schema:
        type: object
        required: [source]
        properties:
          source: {type: string, minLength: 1}
          publish: {type: boolean}
      defaults:
        publish: true
    schedule:
      cron: "30 2 * * *"
      timezone: Europe/Berlin
      input: {source: nightly}
    steps:
      - id: fetch
        task: tests.step
        input: {name: fetch, source: "${{ input.source }}"}
      - group: checks
        needs: [fetch]
        steps:
          - id: lint
            task: tests.step
            input: {name: lint}
          - id: unit
            task: tests.step
            input: {name: unit}
      - id: publish
        task: tests.step
        needs: [checks]
        input: {name: publish}
"""


def write_workflows(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(textwrap.dedent(text))
    sync.apply(folder, created_by="tests")
    return folder


@pytest.fixture
def flows(users, tmp_path):
    """team-a-flow and other-flow, applied (version 1 each)."""
    return write_workflows(tmp_path / "workflows", team_a=TEAM_A, other=OTHER)


def step(run: WorkflowRun, step_id: str) -> StepRun:
    return StepRun.objects.get(run=run, step_id=step_id)


def run_ids(html: bytes) -> set[int]:
    return {int(i) for i in re.findall(rb'href="/dashboard/runs/(\d+)/"', html)}


def fail_step(run: WorkflowRun, step_id: str, error: str) -> None:
    """Dead-letter a step's job, as a worker would, and let the engine see it."""
    run_job(step(run, step_id).job, error=error, retryable=False)
    engine.sweep()


# -- list ---------------------------------------------------------------------------------------

def test_run_list_filters_by_workflow_state_trigger_and_time(flows, client_for):
    a1 = engine.start_run("team-a-flow", triggered_by="alice")
    a2 = engine.start_run("team-a-flow", triggered_by="bob")
    other = engine.start_run("other-flow", {"source": "x"}, triggered_by="alice")
    engine.cancel_run(a2, by="test")
    viewer = client_for("viewer")

    page = viewer.get("/dashboard/runs/")
    assert page.status_code == 200
    assert run_ids(page.content) == {a1.pk, a2.pk, other.pk}
    assert b'id="live"' in page.content
    # newest first
    assert page.content.index(f"/dashboard/runs/{other.pk}/".encode()) < page.content.index(
        f"/dashboard/runs/{a1.pk}/".encode())

    assert run_ids(viewer.get("/dashboard/runs/?workflow=team-a-flow").content) == {a1.pk,
                                                                                  a2.pk}
    assert run_ids(viewer.get("/dashboard/runs/?state=cancelled").content) == {a2.pk}
    assert run_ids(viewer.get("/dashboard/runs/?triggered_by=ALI").content) == {a1.pk,
                                                                              other.pk}
    assert run_ids(viewer.get("/dashboard/runs/?since=1h&workflow=other-flow").content) == {
        other.pk}
    assert run_ids(viewer.get("/dashboard/runs/?since=2000-01-01&state=running").content) == {
        a1.pk, other.pk}
    assert run_ids(viewer.get("/dashboard/runs/?workflow=nope").content) == set()

    bad = viewer.get("/dashboard/runs/?since=yesterday-ish&state=running")
    assert bad.status_code == 400 and b"is not a time" in bad.content
    assert viewer.get("/dashboard/runs/?state=exploded").status_code == 400
    assert viewer.get("/dashboard/runs/?after=x").status_code == 400


def test_run_list_pages_by_keyset(flows, client_for, monkeypatch):
    monkeypatch.setattr("dashboard.views.runs.PAGE_SIZE", 2)
    runs = [engine.start_run("team-a-flow").pk for _ in range(5)]
    viewer = client_for("viewer")
    first = viewer.get("/dashboard/runs/")
    assert run_ids(first.content) == set(runs[3:])
    assert f'?after={runs[3]}"'.encode() in first.content
    second = viewer.get(f"/dashboard/runs/?after={runs[3]}")
    assert run_ids(second.content) == set(runs[1:3])
    last = viewer.get(f"/dashboard/runs/?after={runs[1]}")
    assert run_ids(last.content) == {runs[0]}
    assert b"Older" not in last.content


def test_run_list_shows_only_visible_runs_to_a_hidden_scope(flows, client_for, users):
    from django.contrib.auth.models import Group, User

    from dashboard.models import RoleScope
    from dashboard.roles import VIEWER

    mine = engine.start_run("team-a-flow")
    theirs = engine.start_run("other-flow", {"source": "x"})
    group = Group.objects.create(name="Team A only")
    group.permissions.set(Group.objects.get(name=VIEWER).permissions.all())
    RoleScope.objects.create(group=group, workflows=["team-a-flow"],
                             others=RoleScope.Others.HIDDEN)
    user = User.objects.create_user("hidden", password="pw")
    user.groups.add(group)
    from django.test import Client

    client = Client()
    client.force_login(user)
    assert run_ids(client.get("/dashboard/runs/").content) == {mine.pk}
    assert client.get(f"/dashboard/runs/{theirs.pk}/").status_code == 404
    assert client.get(f"/dashboard/runs/{mine.pk}/").status_code == 200


# -- detail -------------------------------------------------------------------------------------

def test_run_detail_draws_one_node_per_step_coloured_by_state(flows, client_for):
    run = engine.start_run("other-flow", {"source": "<b>src</b>", "api_token": "SENTINEL-42"})
    fetch = step(run, "fetch")
    page = client_for("viewer").get(f"/dashboard/runs/{run.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    svg = html[html.index("<svg"):html.index("</svg>")]
    nodes = re.findall(r'<g class="node ([a-z_]+)" data-step="([a-z_]+)">', svg)
    assert sorted(nodes) == sorted([("running", "fetch"), ("pending", "lint"),
                                    ("pending", "unit"), ("pending", "publish")])
    # the running step links to its job; pending ones have no job yet
    assert f'<a href="/dashboard/jobs/{fetch.job_id}/"><g class="node running"' in svg
    assert svg.count("<a href=") == 1
    assert svg.count('class="edge') == 4  # fetch -> lint, unit -> publish
    assert 'class="group"' in svg and ">checks</text>" in svg
    # the steps table, the masked input, escaped user data, the link to the version
    assert f'href="/dashboard/jobs/{fetch.job_id}/">#{fetch.job_id}</a>' in html
    assert "SENTINEL-42" not in html
    assert "&lt;b&gt;src&lt;/b&gt;" in html and "<b>src</b>" not in html
    assert 'href="/dashboard/workflows/other-flow/?version=1"' in html
    assert 'id="live"' in html


def test_edges_follow_needs_and_layers_follow_the_longest_path(flows):
    from scheduler.models import WorkflowDefinition

    flow = Workflow(WorkflowDefinition.objects.get(name="other-flow").spec)
    graph = layout(flow)
    layer = {n.id: n.layer for n in graph.nodes}
    assert layer == {"fetch": 0, "lint": 1, "unit": 1, "publish": 2}
    assert sorted((e.source, e.target) for e in graph.edges) == [
        ("fetch", "lint"), ("fetch", "unit"), ("lint", "publish"), ("unit", "publish")]
    [box] = graph.groups
    members = [n for n in graph.nodes if n.group == "checks"]
    assert all(box.x <= n.x and n.x + graph.node_w <= box.x + box.width
               and box.y <= n.y and n.y + graph.node_h <= box.y + box.height for n in members)
    assert all(n.x + graph.node_w <= graph.width and n.y + graph.node_h <= graph.height
               for n in graph.nodes)


def test_run_detail_shows_a_failed_runs_error_escaped(flows, client_for):
    run = engine.start_run("team-a-flow")
    fail_step(run, "first", "<script>alert(1)</script>")
    run.refresh_from_db()
    assert run.state == RunState.FAILED
    html = client_for("operator").get(f"/dashboard/runs/{run.pk}/").content.decode()
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<g class="node failed" data-step="first">' in html
    assert '<g class="node cancelled" data-step="second">' in html
    assert "Rerun failed steps" in html and "Cancel run" not in html


# -- actions ------------------------------------------------------------------------------------

def test_cancel_a_running_run_cancels_its_steps_and_writes_one_audit_entry(flows, client_for):
    run = engine.start_run("other-flow", {"source": "x"})
    job_id = step(run, "fetch").job_id
    operator = client_for("operator")
    page = operator.get(f"/dashboard/runs/{run.pk}/").content.decode()
    assert "Cancel run" in page and "data-confirm=" in page and "Rerun failed steps" not in page

    response = csrf_post(operator, f"/dashboard/runs/{run.pk}/cancel/",
                         {"reason": "runaway", "next": f"/dashboard/runs/{run.pk}/"},
                         REMOTE_ADDR="10.0.0.7")
    assert response.status_code == 302 and response["Location"] == f"/dashboard/runs/{run.pk}/"
    run.refresh_from_db()
    assert run.state == RunState.CANCELLED
    assert set(StepRun.objects.filter(run=run).values_list("state", flat=True)) == {
        StepState.CANCELLED}
    assert Job.objects.get(pk=job_id).state == JobState.CANCELLED
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.object_type, entry.object_ids, entry.reason, entry.actor,
            entry.ip) == ("run.cancel", "workflow_run", [str(run.pk)], "runaway", "operator",
                          "10.0.0.7")
    html = operator.get(f"/dashboard/runs/{run.pk}/").content.decode()
    assert html.count('<g class="node cancelled"') == 4
    assert "Cancel run" not in html


def test_cancelling_a_finished_run_is_refused_without_an_audit_entry(flows, client_for):
    run = engine.start_run("team-a-flow")
    engine.cancel_run(run, by="test")
    operator = client_for("operator")
    response = csrf_post(operator, f"/dashboard/runs/{run.pk}/cancel/")
    assert response.status_code == 302
    assert not AuditEntry.objects.exists()
    assert b"only scheduled or running runs can be cancelled" in operator.get(
        response["Location"]).content


def test_rerun_a_failed_run(flows, client_for):
    run = engine.start_run("team-a-flow")
    fail_step(run, "first", "flaky")
    run.refresh_from_db()
    assert run.state == RunState.FAILED
    response = csrf_post(client_for("operator"), f"/dashboard/runs/{run.pk}/rerun/",
                         {"reason": "fixed the bug"})
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.state == RunState.RUNNING and run.reruns == 1
    first = step(run, "first")
    assert first.state == StepState.RUNNING and first.attempt == 2
    assert step(run, "second").state == StepState.PENDING
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.object_ids, entry.reason) == (
        "run.rerun", [str(run.pk)], "fixed the bug")


def test_viewer_gets_403_on_every_run_action_and_sees_no_buttons(flows, client_for):
    active = engine.start_run("team-a-flow")
    failed = engine.start_run("team-a-flow")
    fail_step(failed, "first", "boom")
    viewer = client_for("viewer")
    assert csrf_post(viewer, f"/dashboard/runs/{active.pk}/cancel/").status_code == 403
    assert csrf_post(viewer, f"/dashboard/runs/{failed.pk}/rerun/").status_code == 403
    active.refresh_from_db()
    failed.refresh_from_db()
    assert (active.state, failed.state, failed.reruns) == (RunState.RUNNING, RunState.FAILED, 0)
    assert not AuditEntry.objects.exists()
    for run in (active, failed):
        html = viewer.get(f"/dashboard/runs/{run.pk}/").content.decode()
        assert "Cancel run" not in html and "Rerun failed steps" not in html
        assert "/cancel/" not in html and "/rerun/" not in html


def test_run_actions_refuse_get_missing_csrf_and_anonymous(flows, client_for):
    run = engine.start_run("team-a-flow")
    operator = client_for("operator")
    assert operator.get(f"/dashboard/runs/{run.pk}/cancel/").status_code == 405
    assert operator.get(f"/dashboard/runs/{run.pk}/rerun/").status_code == 405
    assert operator.post(f"/dashboard/runs/{run.pk}/cancel/").status_code == 403
    assert csrf_post(client_for("anonymous"), f"/dashboard/runs/{run.pk}/cancel/"
                     ).status_code == 403
    assert client_for("anonymous").get(f"/dashboard/runs/{run.pk}/").status_code == 302
    run.refresh_from_db()
    assert run.state == RunState.RUNNING and not AuditEntry.objects.exists()


def test_scoped_operator_cancels_own_workflow_only(flows, client_for):
    mine = engine.start_run("team-a-flow")
    theirs = engine.start_run("other-flow", {"source": "x"})
    scoped = client_for("scoped")
    # read-only on the other workflow: the page shows, without the button
    assert "Cancel run" not in scoped.get(f"/dashboard/runs/{theirs.pk}/").content.decode()
    assert "Cancel run" in scoped.get(f"/dashboard/runs/{mine.pk}/").content.decode()
    assert csrf_post(scoped, f"/dashboard/runs/{theirs.pk}/cancel/").status_code == 403
    theirs.refresh_from_db()
    assert theirs.state == RunState.RUNNING and not AuditEntry.objects.exists()
    assert csrf_post(scoped, f"/dashboard/runs/{mine.pk}/cancel/").status_code == 302
    mine.refresh_from_db()
    assert mine.state == RunState.CANCELLED
    assert list(AuditEntry.objects.values_list("action", "actor")) == [("run.cancel", "scoped")]


def test_unknown_run_is_404(flows, client_for):
    assert client_for("viewer").get("/dashboard/runs/999999/").status_code == 404


def test_an_edge_that_skips_columns_passes_no_box_it_does_not_connect():
    flow = Workflow({"name": "skip", "steps": [
        {"id": "a", "task": "t"},
        {"id": "b", "task": "t", "needs": ["a"]},
        {"group": "g", "needs": ["b"], "steps": [{"id": "c1", "task": "t"},
                                                 {"id": "c2", "task": "t"}]},
        {"id": "d", "task": "t", "needs": ["g", "a"]},
    ]})
    graph = layout(flow)
    assert {n.id: n.layer for n in graph.nodes} == {"a": 0, "b": 1, "c1": 2, "c2": 2, "d": 3}
    [long] = [e for e in graph.edges if (e.source, e.target) == ("a", "d")]
    lane = int(re.search(r" L\d+,(\d+) ", long.path).group(1))
    boxes = [(n.y, n.y + graph.node_h) for n in graph.nodes if n.id in ("b", "c1", "c2")]
    boxes += [(g.y, g.y + g.height) for g in graph.groups]
    assert all(not (top <= lane <= bottom) for top, bottom in boxes)
    assert 0 < lane < graph.height
    # a definition's nodes carry their task, and no links
    assert {n.label for n in graph.nodes} == {"t"} and not any(n.href for n in graph.nodes)


def test_list_and_detail_queries_do_not_grow_with_rows(flows, client_for):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    viewer = client_for("viewer")
    viewer.get("/dashboard/runs/")  # warm the session

    def queries(path: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert viewer.get(path).status_code == 200
        return len(captured)

    first = engine.start_run("other-flow", {"source": "x"})
    few = queries("/dashboard/runs/")
    detail = queries(f"/dashboard/runs/{first.pk}/")
    for _ in range(6):
        engine.start_run("other-flow", {"source": "x"}, triggered_by="alice")
    fail_step(first, "fetch", "boom")
    assert queries("/dashboard/runs/") == few
    assert queries(f"/dashboard/runs/{first.pk}/") == detail
