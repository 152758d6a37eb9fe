"""Overview, workers and audit log pages: numbers that match the data, scoping, the 24-hour
chart, alive vs stale workers with their current jobs, audit filters and keyset pages."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from dashboard import actions
from dashboard.access import Access
from dashboard.models import AuditEntry, RoleScope
from dashboard.roles import VIEWER
from dashboard.views.base import PAGE_SIZE
from queues import cancel, enqueue, pause_queue, store
from queues.models import Execution, JobState, Worker
from scheduler import leader
from tests.dashboard.conftest import csrf_post
from tests.jobs import dead_letter, run, worker


@pytest.fixture(autouse=True)
def stale_after_a_minute(settings):
    """Workers heartbeat-stale after 60 s here (the suite's 2 s would flake on a busy box)."""
    settings.RELAY = {**settings.RELAY, "WORKER_STALE_AFTER": 60.0}


@pytest.fixture
def work(db):
    """Jobs in every state over two queues ("default", "team-a")."""
    made = {
        "waiting": [enqueue("tests.record", key=str(i)) for i in range(3)],
        "team_a_waiting": [enqueue("tests.record", queue="team-a", key="a")],
        "future": enqueue("tests.record", key="later", delay=3600),
        "done": [run(enqueue("tests.record", key=f"ok{i}"), output="ok") for i in range(2)],
        "dead": dead_letter(error="boom"),
        "team_a_dead": dead_letter(error="boom", queue="team-a"),
        "retrying": run(enqueue("tests.fail"), error="flaky"),  # failed, retry due later
        "cancelled": cancel(enqueue("tests.record", key="x")),
    }
    assert made["retrying"].state == JobState.FAILED
    return made


def hidden_scope_client(client, users):
    """A viewer scoped to queue team-a who does not see other work at all."""
    group = Group.objects.create(name="Team A viewers")
    group.permissions.set(Group.objects.get(name=VIEWER).permissions.all())
    RoleScope.objects.create(group=group, queues=["team-a"], others=RoleScope.Others.HIDDEN)
    user = User.objects.create_user("hidden", password="pw")
    user.groups.add(group)
    client.force_login(user)
    return client


# -- overview -----------------------------------------------------------------------------------

def test_overview_counts_match_the_data(client_for, work):
    response = client_for("viewer").get("/dashboard/")
    assert response.status_code == 200
    o = response.context["o"]
    # 3 + 1 due, 1 in the future; the retrying job is "failed" with its retry due later.
    assert o.states == {"scheduled": 5, "running": 0, "failed": 1, "dead_letter": 2}
    assert o.dead_letters == 2
    assert o.finished == {"success": 2, "dead_letter": 2, "cancelled": 1}
    rows = {q.name: q for q in o.queues}
    assert (rows["default"].scheduled, rows["default"].failed, rows["default"].dead) == (4, 1, 1)
    assert (rows["team-a"].scheduled, rows["team-a"].dead) == (1, 1)
    assert o.oldest.pk == work["waiting"][0].pk and o.oldest_age >= timedelta(0)
    assert rows["default"].oldest.pk == work["waiting"][0].pk
    assert rows["team-a"].oldest.pk == work["team_a_waiting"][0].pk
    html = response.content.decode()
    assert 'id="live"' in html
    assert f'href="/dashboard/jobs/{work["waiting"][0].pk}/"' in html  # oldest waiting job
    assert 'href="/dashboard/dead-letters/"' in html and 'href="/dashboard/workers/"' in html
    assert re.search(r'id="stat-dead"><div class="value error">2</div>', html)


def test_overview_chart_has_24_hourly_bars_with_the_totals(client_for, work):
    response = client_for("viewer").get("/dashboard/")
    chart = response.context["chart"]
    assert len(chart.bars) == 24
    # Executions: 2 successes; failures: 2 dead letters + 1 failed attempt.
    assert (chart.ok, chart.bad) == (2, 3)
    assert chart.bars[-1].start <= timezone.now() < chart.bars[-1].end
    html = response.content.decode()
    assert html.count('class="bar-ok"') == 24 and html.count('class="bar-bad"') == 24
    assert html.count("<title>") >= 24 + 1  # one hover title per bar, plus the page's
    table = html[html.index('id="chart-table"'):]
    assert re.search(r"<th>Total</th><th class=\"num\">2</th><th class=\"num\">3</th>", table)
    # A failure from yesterday is outside the window.
    Execution.objects.filter(error_message="flaky").update(
        started_at=timezone.now() - timedelta(hours=30),
        finished_at=timezone.now() - timedelta(hours=30))
    chart = client_for("viewer").get("/dashboard/").context["chart"]
    assert (chart.ok, chart.bad) == (2, 2)


def test_overview_bar_heights_scale_to_the_busiest_hour(client_for, work):
    chart = client_for("viewer").get("/dashboard/").context["chart"]
    busiest = max(chart.bars, key=lambda b: b.total)
    assert busiest.ok_height + busiest.bad_height == pytest.approx(chart.baseline - 10, abs=0.2)
    assert all(b.ok_height == b.bad_height == 0 for b in chart.bars if b.total == 0)


def test_scoped_user_with_others_hidden_sees_only_their_queue(client, users, work):
    response = hidden_scope_client(client, users).get("/dashboard/")
    assert response.status_code == 200
    o = response.context["o"]
    assert [q.name for q in o.queues] == ["team-a"]
    assert o.states == {"scheduled": 1, "running": 0, "failed": 0, "dead_letter": 1}
    assert o.finished == {"success": 0, "dead_letter": 1, "cancelled": 0}
    assert (o.chart.ok, o.chart.bad) == (0, 1)
    assert o.oldest.pk == work["team_a_waiting"][0].pk
    html = response.content.decode()
    assert 'data-queue="team-a"' in html and 'data-queue="default"' not in html


def test_hidden_scope_with_a_workflow_counts_that_workflows_jobs_in_other_queues(
        client, users, work):
    flow_job = run(enqueue("tests.record", key="f", meta={"workflow": "wf-x"}), output="f")
    assert flow_job.queue == "default"
    group = Group.objects.create(name="Team A + wf-x")
    group.permissions.set(Group.objects.get(name=VIEWER).permissions.all())
    RoleScope.objects.create(group=group, queues=["team-a"], workflows=["wf-x"],
                             others=RoleScope.Others.HIDDEN)
    user = User.objects.create_user("wf", password="pw")
    user.groups.add(group)
    client.force_login(user)
    o = client.get("/dashboard/").context["o"]
    # team-a's dead letter (a failed attempt), and the workflow's one success in "default".
    assert (o.chart.ok, o.chart.bad) == (1, 1)
    assert o.finished["success"] == 1
    rows = {q.name: q for q in o.queues}
    assert set(rows) == {"team-a"}  # "default" holds none of the user's waiting work


def test_scoped_user_who_sees_others_read_only_sees_every_queue(client_for, work):
    o = client_for("scoped").get("/dashboard/").context["o"]
    assert {q.name for q in o.queues} == {"default", "team-a"}
    assert o.states["scheduled"] == 5


def test_overview_shows_paused_queues_scheduler_workers_and_runs(client_for, work):
    pause_queue("team-a", by="ops", reason="maintenance")
    alive = worker("alive-1", queues=["default"])
    stale = worker("stale-1", queues=["default"])
    Worker.objects.filter(pk=stale.pk).update(
        last_heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert leader.acquire("sched-host-1", 30)
    response = client_for("viewer").get("/dashboard/")
    o = response.context["o"]
    # The helpers registered workers on the way; only these two are live.
    live = Worker.objects.filter(state=Worker.State.RUNNING)
    fresh = live.exclude(pk=stale.pk).count()
    assert (o.workers_alive, o.workers_stale) == (fresh, 1) and alive.pk
    assert [p.queue for p in o.paused] == ["team-a"]
    assert o.scheduler.holder == "sched-host-1" and o.scheduler_live
    html = response.content.decode()
    assert "sched-host-1" in html and "maintenance" in html and "+1 stale" in html


def test_overview_without_a_scheduler_says_so(client_for, db):
    html = client_for("viewer").get("/dashboard/").content.decode()
    assert "No scheduler has run" in html


def test_overview_query_count_does_not_grow_with_jobs(client_for, work):
    client = client_for("viewer")
    client.get("/dashboard/")  # warm the session

    def queries() -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            assert client.get("/dashboard/").status_code == 200
        return len(captured)

    before = queries()
    for i in range(20):
        enqueue("tests.record", key=str(i))
        enqueue("tests.record", queue="team-a", key=str(i))
    assert queries() == before
    enqueue("tests.record", queue="reports")  # one more queue: one more latency probe
    assert queries() == before + 1


def test_overview_needs_a_role(client_for, users, client):
    assert client_for("anonymous").get("/dashboard/").status_code == 302
    nobody = User.objects.create_user("nobody", password="pw")
    client.force_login(nobody)
    assert client.get("/dashboard/").status_code == 403


# -- workers ------------------------------------------------------------------------------------

def test_workers_page_shows_alive_stale_and_current_jobs(client_for, db):
    job = enqueue("tests.record", key="busy")
    alive = worker("alive-1", queues=["default"])
    [claimed] = store.claim(worker_id=alive.pk, queues=["default"], tasks=["tests.record"],
                            limit=1)
    assert claimed.id == job.pk
    stale = worker("stale-1", queues=["default", "team-a"])
    Worker.objects.filter(pk=stale.pk).update(
        last_heartbeat_at=timezone.now() - timedelta(minutes=5))
    gone = worker("gone-1")
    Worker.objects.filter(pk=gone.pk).update(state=Worker.State.STOPPED,
                                             stopped_at=timezone.now())
    old = worker("old-1")
    Worker.objects.filter(pk=old.pk).update(
        state=Worker.State.STOPPED, last_heartbeat_at=timezone.now() - timedelta(days=3))

    response = client_for("viewer").get("/dashboard/workers/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="live"' in html
    row = html[html.index(f'id="worker-{alive.pk}"'):]
    row = row[:row.index("</tr>")]
    assert 'data-state="alive"' in row and "alive-1" in row and "test-host" in row
    assert f'href="/dashboard/jobs/{job.pk}/"' in row and "tests.record" in row
    assert "running for" in row
    stale_row = html[html.index(f'id="worker-{stale.pk}"'):]
    stale_row = stale_row[:stale_row.index("</tr>")]
    assert 'data-state="stale"' in stale_row and "state-stale" in stale_row
    assert f'id="worker-{gone.pk}"' in html  # stopped today: listed
    assert f'id="worker-{old.pk}"' not in html  # stopped three days ago: not
    ctx = response.context
    assert (ctx["alive"], ctx["stale"]) == (1, 1)
    # Registered tasks are listed, collapsed.
    assert "<details><summary>" in row and "<code>tests.fail</code>" in row


def test_workers_page_hides_other_queues_from_a_hidden_scope(client, users, db):
    enqueue("tests.record", key="other")
    other = worker("other-1", queues=["default"])
    store.claim(worker_id=other.pk, queues=["default"], tasks=["tests.record"], limit=1)
    mine = worker("mine-1", queues=["team-a", "secret-queue"])
    html = hidden_scope_client(client, users).get("/dashboard/workers/").content.decode()
    assert f'id="worker-{mine.pk}"' in html and "secret-queue" not in html
    assert f'id="worker-{other.pk}"' not in html


# -- audit log ----------------------------------------------------------------------------------

def entry(actor="operator", action="job.retry", object_type="job", ids=("1",), reason="",
          details=None, source="dashboard"):
    return AuditEntry.objects.create(actor=actor, action=action, object_type=object_type,
                                     object_ids=list(ids), count=len(ids), reason=reason,
                                     details=details or {}, source=source, ip="10.0.0.1")


def ids_on(response) -> list[int]:
    return [e.pk for e in response.context["entries"]]


def test_audit_log_filters_by_actor_action_and_object_id(client_for, users):
    a = entry(actor="alice", action="job.retry", ids=["42"], reason="fixed the API key")
    b = entry(actor="bob", action="job.cancel", ids=["142"])
    c = entry(actor="alice", action="job.bulk_retry", ids=["7", "42", "43"])
    d = entry(actor="bob", action="run.cancel", object_type="workflow_run", ids=["42"])
    e = entry(actor="carol", action="queue.pause", object_type="queue", ids=["reports"],
              source="admin")
    viewer = client_for("viewer")
    assert ids_on(viewer.get("/dashboard/audit/")) == [e.pk, d.pk, c.pk, b.pk, a.pk]
    assert ids_on(viewer.get("/dashboard/audit/?actor=alice")) == [c.pk, a.pk]
    assert ids_on(viewer.get("/dashboard/audit/?action=job.cancel")) == [b.pk]
    # Job 42: the exact id, not 142; and not run 42 once the type is given.
    assert ids_on(viewer.get("/dashboard/audit/?object_id=42")) == [d.pk, c.pk, a.pk]
    assert ids_on(viewer.get("/dashboard/audit/?object_type=job&object_id=42")) == [c.pk, a.pk]
    assert ids_on(viewer.get("/dashboard/audit/?object_type=queue&object_id=reports")) == [e.pk]
    assert ids_on(viewer.get("/dashboard/audit/?reason=api+key")) == [a.pk]
    assert ids_on(viewer.get("/dashboard/audit/?source=admin")) == [e.pk]
    assert ids_on(viewer.get("/dashboard/audit/?actor=alice&action=job.retry")) == [a.pk]


def test_audit_log_time_filters(client_for, users):
    old = entry(action="job.retry")
    new = entry(action="job.cancel")
    viewer = client_for("viewer")
    assert ids_on(viewer.get("/dashboard/audit/?since=1h")) == [new.pk, old.pk]
    future = (timezone.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert ids_on(viewer.get(f"/dashboard/audit/?since={future}")) == []
    response = viewer.get("/dashboard/audit/?since=yesterday-ish")
    assert response.status_code == 200 and "is not a time" in response.content.decode()


def test_audit_log_shows_links_and_escapes_and_masks(client_for, users):
    job = entry(action="job.rerun", ids=["5", "6"], reason="<script>alert(1)</script>",
                details={"kwargs": {"api_key": "SENTINEL-AUDIT"}, "note": "<b>x</b>"})
    entry(action="run.cancel", object_type="workflow_run", ids=["9"])
    entry(action="schedule.pause", object_type="schedule", ids=["3"],
          details={"name": "nightly"})
    html = client_for("viewer").get("/dashboard/audit/").content.decode()
    assert 'href="/dashboard/jobs/5/"' in html and 'href="/dashboard/jobs/6/"' in html
    assert 'href="/dashboard/runs/9/"' in html
    assert 'href="/dashboard/schedules/"' in html and "schedule nightly" in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "SENTINEL-AUDIT" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert "10.0.0.1" in html and job.pk


def test_audit_log_keyset_pages(client_for, users):
    made = [entry(ids=[str(i)]) for i in range(PAGE_SIZE + 5)]
    viewer = client_for("viewer")
    first = viewer.get("/dashboard/audit/?actor=operator")
    assert ids_on(first) == [e.pk for e in reversed(made)][:PAGE_SIZE]
    after = first.context["next_after"]
    assert after == made[5].pk
    assert f"after={after}" in first.content.decode() and "actor=operator" in first.content.decode()
    second = viewer.get(f"/dashboard/audit/?actor=operator&after={after}")
    assert ids_on(second) == [e.pk for e in reversed(made[:5])]
    assert second.context["next_after"] is None


def test_audit_log_is_read_only(client_for, users):
    entry()
    html = client_for("admin").get("/dashboard/audit/").content.decode()
    assert 'method="post"' not in html.split('id="audit-filter"')[1].split("</main>")[0]
    assert csrf_post(client_for("admin"), "/dashboard/audit/").status_code == 405


def test_audit_log_records_real_actions(client_for, users, work):
    actor = actions.Actor(users["operator"], Access(users["operator"]), "10.9.9.9", "dashboard")
    actions.retry_job(actor, work["dead"].pk, reason="upstream fixed")
    response = client_for("viewer").get(f"/dashboard/audit/?object_type=job&object_id="
                                        f"{work['dead'].pk}")
    [shown] = response.context["entries"]
    assert (shown.action, shown.reason, shown.ip) == ("job.retry", "upstream fixed", "10.9.9.9")


def test_audit_log_hides_other_teams_entries_from_a_hidden_scope(client, users):
    mine = entry(action="job.retry", details={"queue": "team-a"})
    entry(action="job.retry", details={"queue": "default"})
    paused = entry(action="queue.pause", object_type="queue", ids=["team-a"])
    entry(action="queue.pause", object_type="queue", ids=["billing"])
    response = hidden_scope_client(client, users).get("/dashboard/audit/")
    assert ids_on(response) == [paused.pk, mine.pk]
