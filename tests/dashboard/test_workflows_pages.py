"""Workflow definitions pages: the list, versions and source, a diff, and starting a run."""

from __future__ import annotations

import json
import textwrap

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from dashboard.models import AuditEntry, RoleScope
from dashboard.roles import OPERATOR
from scheduler.definitions import sync
from scheduler.models import WorkflowDefinition, WorkflowRun
from tests.dashboard.conftest import csrf_post
from tests.dashboard.test_runs import OTHER, TEAM_A, write_workflows

CHANGED = OTHER.replace(
    "        input: {name: publish}",
    "        # <script>alert('diff')</script> publishes to the <b>site</b>\n"
    "        input: {name: publish, target: \"<b>site</b>\"}",
)


@pytest.fixture
def flows(users, tmp_path):
    return write_workflows(tmp_path / "workflows", team_a=TEAM_A, other=OTHER)


@pytest.fixture
def two_versions(flows):
    (flows / "other.yaml").write_text(textwrap.dedent(CHANGED))
    sync.apply(flows, created_by="deployer")
    assert list(WorkflowDefinition.objects.filter(name="other-flow")
                .values_list("version", flat=True).order_by("version")) == [1, 2]
    return flows


# -- list and detail ----------------------------------------------------------------------------

def test_definition_list_shows_each_workflow_with_its_latest_version(two_versions, client_for):
    from scheduler import engine

    run = engine.start_run("team-a-flow")
    operator = client_for("operator")
    html = operator.get("/dashboard/workflows/").content.decode()
    row = html[html.index("other-flow"):html.index("</tr>", html.index("other-flow"))]
    assert "v2" in row and "Fetch, check in parallel, publish." in row
    assert '<td class="num">2</td>' in row
    assert "never run" in row
    assert "30 2 * * *" in row and "Europe/Berlin" in row  # its schedule
    assert 'href="/dashboard/workflows/other-flow/start/"' in row
    team = html[html.index("team-a-flow"):html.index("</tr>", html.index("team-a-flow"))]
    assert f'href="/dashboard/runs/{run.pk}/"' in team and "state-running" in team
    # viewers see the list without Start links; scoped operators only for their workflow
    assert "/start/" not in client_for("viewer").get("/dashboard/workflows/").content.decode()
    scoped = client_for("scoped").get("/dashboard/workflows/").content.decode()
    assert "/dashboard/workflows/team-a-flow/start/" in scoped
    assert "/dashboard/workflows/other-flow/start/" not in scoped


def test_definition_detail_lists_versions_and_shows_the_selected_source(two_versions,
                                                                      client_for):
    viewer = client_for("viewer")
    latest = viewer.get("/dashboard/workflows/other-flow/")
    assert latest.status_code == 200
    html = latest.content.decode()
    assert "version 2" in html and "deployer" in html and "tests" in html
    v2 = WorkflowDefinition.objects.get(name="other-flow", version=2)
    assert v2.content_hash[:12] in html and "other.yaml" in html
    # the source, escaped
    assert "&lt;script&gt;alert(&#x27;diff&#x27;)&lt;/script&gt;" in html
    assert "<script>alert(" not in html
    # the definition's graph: one node per step, labelled by task
    assert html.count('<g class="node definition"') == 4
    assert 'href="/dashboard/workflows/other-flow/diff/?a=1&amp;b=2"' in html
    v1 = viewer.get("/dashboard/workflows/other-flow/?version=1").content.decode()
    assert "version 1" in v1 and "alert(" not in v1
    assert viewer.get("/dashboard/workflows/other-flow/?version=3").status_code == 404
    assert viewer.get("/dashboard/workflows/other-flow/?version=x").status_code == 404
    assert viewer.get("/dashboard/workflows/no-such-flow/").status_code == 404


def test_definitions_hidden_from_a_scope_are_404(two_versions):
    group = Group.objects.create(name="Team A, nothing else")
    group.permissions.set(Group.objects.get(name=OPERATOR).permissions.all())
    RoleScope.objects.create(group=group, workflows=["team-a-flow"],
                             others=RoleScope.Others.HIDDEN)
    user = User.objects.create_user("hidden", password="pw")
    user.groups.add(group)
    client = Client()
    client.force_login(user)
    assert "other-flow" not in client.get("/dashboard/workflows/").content.decode()
    assert client.get("/dashboard/workflows/other-flow/").status_code == 404
    assert client.get("/dashboard/workflows/other-flow/diff/?a=1&b=2").status_code == 404
    assert client.get("/dashboard/workflows/other-flow/start/").status_code == 404
    assert client.get("/dashboard/workflows/team-a-flow/").status_code == 200


# -- diff ---------------------------------------------------------------------------------------

def test_diff_marks_added_and_removed_lines_escaped(two_versions, client_for):
    response = client_for("viewer").get("/dashboard/workflows/other-flow/diff/?a=1&b=2")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<span class="del">-    input: {name: publish}</span>' in html
    assert ('<span class="add">+    # &lt;script&gt;alert(&#x27;diff&#x27;)&lt;/script&gt; '
            'publishes to the &lt;b&gt;site&lt;/b&gt;</span>') in html
    assert ('<span class="add">+    input: {name: publish, target: '
            '&quot;&lt;b&gt;site&lt;/b&gt;&quot;}</span>') in html
    assert "<script>alert(" not in html and "<b>site</b>" not in html
    # unchanged lines are context, not marked
    assert '<span class="context">     needs: [checks]</span>' in html
    assert '<span class="hunk">@@ -31,4 +31,5 @@</span>' in html
    assert html.count('class="add"') == 2 and html.count('class="del"') == 1
    # the other way round swaps the marks
    back = client_for("viewer").get("/dashboard/workflows/other-flow/diff/?a=2&b=1")
    assert back.content.decode().count('class="del"') == 2


def test_diff_of_unknown_versions_is_404(two_versions, client_for):
    viewer = client_for("viewer")
    assert viewer.get("/dashboard/workflows/other-flow/diff/?a=1&b=9").status_code == 404
    assert viewer.get("/dashboard/workflows/other-flow/diff/?a=&b=x").status_code == 404
    assert viewer.get("/dashboard/workflows/nope/diff/?a=1&b=1").status_code == 404
    same = viewer.get("/dashboard/workflows/other-flow/diff/?a=2&b=2")
    assert same.status_code == 200 and b"is the same" in same.content


# -- start --------------------------------------------------------------------------------------

def test_start_form_is_prefilled_from_the_defaults_and_shows_the_schema(flows, client_for):
    response = client_for("operator").get("/dashboard/workflows/other-flow/start/")
    assert response.status_code == 200
    html = response.content.decode()
    textarea = html[html.index("<textarea"):html.index("</textarea>")]
    prefilled = json.loads(textarea[textarea.index(">") + 1:].replace("&quot;", '"'))
    assert prefilled == {"publish": True, "source": ""}
    assert "minLength" in html and "Input schema" in html
    assert 'name="reason"' in html and 'name="csrfmiddlewaretoken"' in html


def test_start_with_invalid_json_shows_the_error_and_creates_no_run(flows, client_for):
    operator = client_for("operator")
    response = csrf_post(operator, "/dashboard/workflows/other-flow/start/",
                         {"input": '{"source": "x",'})
    assert response.status_code == 400
    assert b"The input is not valid JSON" in response.content
    assert b"{&quot;source&quot;: &quot;x&quot;," in response.content  # kept in the form
    for text, message in (("[1, 2]", b"must be a JSON object, not list"),
                          ('{"source": NaN}', b"NaN is not a JSON value")):
        response = csrf_post(operator, "/dashboard/workflows/other-flow/start/",
                             {"input": text})
        assert response.status_code == 400 and message in response.content
    assert not WorkflowRun.objects.exists() and not AuditEntry.objects.exists()


def test_start_with_input_failing_the_schema_names_the_field(flows, client_for):
    operator = client_for("operator")
    response = csrf_post(operator, "/dashboard/workflows/other-flow/start/",
                         {"input": '{"source": "", "publish": true}'})
    assert response.status_code == 400
    assert b"source: &#x27;&#x27; should be non-empty" in response.content or (
        b"source:" in response.content and b"too short" in response.content)
    response = csrf_post(operator, "/dashboard/workflows/other-flow/start/",
                         {"input": '{"publish": "yes"}'})
    assert response.status_code == 400 and b"source" in response.content
    assert not WorkflowRun.objects.exists() and not AuditEntry.objects.exists()


def test_start_success_creates_a_run_and_one_audit_entry(flows, client_for):
    operator = client_for("operator")
    response = csrf_post(operator, "/dashboard/workflows/other-flow/start/",
                         {"input": '{"source": "manual", "api_key": "SENTINEL-7"}',
                          "reason": "backfill"}, REMOTE_ADDR="10.9.8.7")
    run = WorkflowRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/dashboard/runs/{run.pk}/"
    assert run.input == {"source": "manual", "publish": True, "api_key": "SENTINEL-7"}
    assert run.triggered_by == "operator" and run.definition.version == 1
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.object_ids, entry.reason, entry.ip) == (
        "workflow.start", [str(run.pk)], "backfill", "10.9.8.7")
    assert "SENTINEL-7" not in json.dumps(entry.details)
    page = operator.get(response["Location"]).content.decode()
    assert f"Started run #{run.pk}" in page and "SENTINEL-7" not in page


def test_masked_defaults_keep_their_value_when_left_masked(tmp_path, users, client_for):
    write_workflows(tmp_path / "wf", secret="""
        name: with-secret
        input:
          defaults: {api_token: real-token, region: eu}
        steps:
          - id: only
            task: tests.record
    """)
    operator = client_for("operator")
    form = operator.get("/dashboard/workflows/with-secret/start/").content.decode()
    assert "real-token" not in form and "••••••" in form
    csrf_post(operator, "/dashboard/workflows/with-secret/start/",
              {"input": '{"api_token": "••••••", "region": "us"}'})
    assert WorkflowRun.objects.get().input == {"api_token": "real-token", "region": "us"}


def test_start_needs_the_trigger_permission(flows, client_for):
    viewer = client_for("viewer")
    assert viewer.get("/dashboard/workflows/other-flow/start/").status_code == 403
    assert csrf_post(viewer, "/dashboard/workflows/other-flow/start/",
                     {"input": '{"source": "x"}'}).status_code == 403
    assert "Start" not in viewer.get("/dashboard/workflows/other-flow/").content.decode()
    scoped = client_for("scoped")
    assert scoped.get("/dashboard/workflows/other-flow/start/").status_code == 403
    assert csrf_post(scoped, "/dashboard/workflows/other-flow/start/",
                     {"input": '{"source": "x"}'}).status_code == 403
    assert not WorkflowRun.objects.exists() and not AuditEntry.objects.exists()
    assert csrf_post(scoped, "/dashboard/workflows/team-a-flow/start/",
                     {"input": "{}"}).status_code == 302
    assert WorkflowRun.objects.get().definition.name == "team-a-flow"
    # no CSRF token: refused
    assert client_for("operator").post("/dashboard/workflows/team-a-flow/start/",
                                       {"input": "{}"}).status_code == 403
    assert client_for("anonymous").get("/dashboard/workflows/team-a-flow/start/"
                                       ).status_code == 302
    assert client_for("operator").get("/dashboard/workflows/nope/start/").status_code == 404
