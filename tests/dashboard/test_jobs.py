"""Jobs pages: filters, keyset paging, the detail page (masked, escaped), single-job actions
with their audit entries and permissions, edit-and-retry, and triggering a task."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from html import unescape

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from dashboard.filters import SORTS
from dashboard.masking import MASK
from dashboard.models import AuditEntry, RoleScope
from dashboard.roles import OPERATOR
from dashboard.views.base import PAGE_SIZE
from queues import enqueue, enqueue_many
from queues.models import DeadLetter, Job, JobState
from tests.dashboard.conftest import csrf_post
from tests.jobs import dead_letter, run

SENTINEL = "SENTINEL-123"
SCRIPT = "<script>alert('pwned')</script>"


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content[:500]
    return [job.pk for job in response.context["jobs"]]


@pytest.fixture
def jobs(db):
    """A small zoo: each filter below matches a known subset."""
    alpha = enqueue("tests.record", key="alpha", customer_id=42, tags=["nightly"])
    beta = enqueue("tests.record", queue="reports", key="beta", customer_id="42")
    broken = dead_letter("tests.fail", error="ledger exploded", queue="reports",
                         customer_id="abc", order={"id": 7})
    done = run(enqueue("tests.record", key="gamma", tags=["adhoc"]), output="ok")
    old = enqueue("tests.record", key="ancient")
    Job.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    return {"alpha": alpha, "beta": beta, "broken": broken, "done": done, "old": old}


# -- the list -----------------------------------------------------------------------------------

def test_each_filter_narrows_the_list(client_for, jobs):
    viewer = client_for("viewer")
    j = {name: job.pk for name, job in jobs.items()}
    assert set(ids(viewer.get("/dashboard/jobs/"))) == set(j.values())
    cases = {
        "state=dead_letter": {j["broken"]},
        "state=success&state=dead_letter": {j["done"], j["broken"]},
        "queue=reports": {j["beta"], j["broken"]},
        "task=tests.fail": {j["broken"]},
        "tag=nightly": {j["alpha"]},
        "arg=args.customer_id=42": {j["alpha"]},  # the number, not the string "42"
        'arg=args.customer_id="42"': {j["beta"]},
        "arg=args.customer_id=abc": {j["broken"]},
        "arg=kwargs.order.id=7": {j["broken"]},
        "q=exploded": {j["broken"]},  # error text
        "q=alpha": {j["alpha"]},  # arguments
        "since=24h": set(j.values()) - {j["old"]},
        "until=1d": {j["old"]},
        "queue=reports&state=scheduled": {j["beta"]},
    }
    for query, expected in cases.items():
        assert set(ids(viewer.get(f"/dashboard/jobs/?{query}"))) == expected, query


def test_filter_by_worker(client_for, jobs):
    worker = jobs["done"].worker
    got = ids(client_for("viewer").get(f"/dashboard/jobs/?worker={worker.name}"))
    assert jobs["done"].pk in got and jobs["alpha"].pk not in got


def test_a_bad_filter_shows_its_message_not_an_error_page(client_for, jobs):
    viewer = client_for("viewer")
    for query, message in [("state=bogus", "unknown state"),
                           ("arg=customer_id", "not path=value"),
                           ("since=yesterday-ish", "is not a time"),
                           ("sort=sideways", "unknown sort"),
                           ("after=abc", "is not a job id"),
                           # str.isdigit() says yes to superscripts; int() does not.
                           ("after=%C2%B3", "is not a job id"),
                           ("before=99999999999999999999999", "is not a job id")]:
        response = viewer.get(f"/dashboard/jobs/?{query}")
        assert response.status_code == 200, query
        html = unescape(response.content.decode())
        assert message in html and "filter-error" in html, query
        assert response.context["jobs"] == []
        # What the user typed stays in the form, so they can fix it.
    assert 'value="yesterday-ish"' in viewer.get("/dashboard/jobs/?since=yesterday-ish"
                                                 ).content.decode()


@pytest.mark.parametrize("sort", ["-id", "id", "-run_at", "run_at", "-priority"])
def test_keyset_paging_returns_every_row_once_both_ways(client_for, db, sort):
    batch = enqueue_many("tests.record", [{"key": str(i)} for i in range(PAGE_SIZE * 2 + 7)])
    # Ties in the sort column (same created_at, run_at, priority) are broken by id.
    Job.objects.filter(pk__in=batch.ids[:10]).update(priority=5)
    viewer = client_for("viewer")
    # All the jobs are scheduled: other sorts than id are offered for unfinished jobs.
    response = viewer.get(f"/dashboard/jobs/?state=scheduled&sort={sort}")
    assert f"{PAGE_SIZE}+ matches".encode() in response.content  # never a full COUNT
    pages = [ids(response)]
    while response.context["next_url"]:
        assert len(pages) < 5, "paging does not end"
        response = viewer.get("/dashboard/jobs/" + response.context["next_url"])
        assert f"sort={sort}" in response.request["QUERY_STRING"] or sort == "-id"
        pages.append(ids(response))
    seen = [pk for p in pages for pk in p]
    assert sorted(seen) == sorted(batch.ids) and len(pages) == 3
    expected = list(Job.objects.order_by(*SORTS[sort]).values_list("id", flat=True))
    assert viewer.get(f"/dashboard/jobs/?sort={sort}").context["jobs"] == [] or sort in (
        "-id", "id")  # without the state filter, only id sorts are accepted
    assert seen == expected
    back = []
    while response.context["prev_url"]:
        assert len(back) < 5, "paging back does not end"
        response = viewer.get("/dashboard/jobs/" + response.context["prev_url"])
        back.insert(0, ids(response))
    assert back == pages[:-1]


def test_paging_keeps_the_filter(client_for, db):
    enqueue_many("tests.record", [{"key": str(i)} for i in range(PAGE_SIZE + 5)],
                 queue="reports")
    enqueue_many("tests.record", [{"key": str(i)} for i in range(10)])
    viewer = client_for("viewer")
    first = viewer.get("/dashboard/jobs/?queue=reports")
    assert "queue=reports" in first.context["next_url"]
    second = viewer.get("/dashboard/jobs/" + first.context["next_url"])
    assert len(ids(second)) == 5
    assert {j.queue for j in second.context["jobs"]} == {"reports"}


def test_few_matches_are_counted_exactly(client_for, jobs):
    response = client_for("viewer").get("/dashboard/jobs/?queue=reports")
    assert b"2 matches" in response.content


def test_list_masks_secrets_and_escapes_errors(client_for, db):
    dead_letter("tests.fail", error=SCRIPT, api_key=SENTINEL, customer_id=1)
    html = client_for("operator").get("/dashboard/jobs/").content.decode()
    assert SENTINEL not in html and "api_key" in html and MASK in html
    assert SCRIPT not in html and "&lt;script&gt;" in html
    # The bulk bar posts to the bulk view, with the ids and the filter.
    assert 'action="/dashboard/jobs/bulk/"' in html and 'name="ids"' in html
    assert "data-select-all" in html and 'id="live"' in html


def test_bulk_bar_offers_the_filter_only_when_there_is_one(client_for, jobs):
    operator = client_for("operator")
    assert b'value="filter"' not in operator.get("/dashboard/jobs/").content
    html = operator.get("/dashboard/jobs/?state=dead_letter&queue=reports").content.decode()
    assert 'name="scope" value="filter"' in html
    assert 'name="filter" value="state=dead_letter&amp;queue=reports"' in html
    assert b'name="ids"' not in client_for("viewer").get("/dashboard/jobs/").content


def test_a_scope_that_hides_other_work_hides_it_in_the_list_and_detail(client_for, users, jobs):
    hidden = User.objects.create_user("reports-only", password="pw")
    group = Group.objects.create(name="Reports team")
    group.permissions.set(Group.objects.get(name=OPERATOR).permissions.all())
    RoleScope.objects.create(group=group, queues=["reports"], others=RoleScope.Others.HIDDEN)
    hidden.groups.add(group)
    client = client_for("viewer")
    client.force_login(hidden)
    assert set(ids(client.get("/dashboard/jobs/"))) == {jobs["beta"].pk, jobs["broken"].pk}
    assert client.get(f"/dashboard/jobs/{jobs['beta'].pk}/").status_code == 200
    assert client.get(f"/dashboard/jobs/{jobs['alpha'].pk}/").status_code == 404
    assert client.get("/dashboard/jobs/999999/").status_code == 404


# -- the detail page ----------------------------------------------------------------------------

def test_detail_shows_the_whole_story_masked_and_escaped(client_for, db):
    job = enqueue("tests.fail", max_attempts=2, dedup_key="order-7", tags=["billing"],
                  api_key=SENTINEL, nested={"password": SENTINEL, "ok": "visible"})
    job = run(job, error="first try failed", error_type="TimeoutError")
    job = Job.objects.get(pk=job.pk)
    Job.objects.filter(pk=job.pk).update(run_at=timezone.now() - timedelta(seconds=5))
    job = run(job, error=SCRIPT, error_type="ValueError", retryable=False)
    assert job.state == JobState.DEAD_LETTER
    response = client_for("viewer").get(f"/dashboard/jobs/{job.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert SENTINEL not in html
    assert SCRIPT not in html and "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in html
    for text in ["order-7", "billing", "Attempt 1", "Attempt 2", "TimeoutError",
                 "first try failed", "Traceback (most recent call last)", "visible",
                 "The error is not retryable", "2 of 2", 'class="traceback"']:
        assert text in html, text
    assert f"/dashboard/jobs/{job.pk}/retry/" not in html  # a viewer sees no buttons
    assert "<button" not in html.split("</header>")[1]


def test_operator_sees_the_buttons_the_state_allows(client_for, db):
    operator = client_for("operator")
    broken = dead_letter()
    html = operator.get(f"/dashboard/jobs/{broken.pk}/").content.decode()
    for url in ["retry", "discard", "rerun", "edit-retry"]:
        assert f"/dashboard/jobs/{broken.pk}/{url}/" in html, url
    assert f"/dashboard/jobs/{broken.pk}/cancel/" not in html
    assert "data-confirm" in html
    waiting = enqueue("tests.record", delay=600)
    html = operator.get(f"/dashboard/jobs/{waiting.pk}/").content.decode()
    assert f"/dashboard/jobs/{waiting.pk}/cancel/" in html
    assert f"/dashboard/jobs/{waiting.pk}/retry/" not in html
    assert 'id="live"' in html  # an unfinished job refreshes itself


def test_detail_links_a_rerun_both_ways_and_to_its_workflow_run(client_for, db):
    operator = client_for("operator")
    done = run(enqueue("tests.record", key="k", meta={"workflow_run": 12345, "step": "load",
                                                      "workflow": "etl"}), output={"rows": 3})
    response = csrf_post(operator, f"/dashboard/jobs/{done.pk}/rerun/")
    new = Job.objects.exclude(pk=done.pk).get()
    assert response.status_code == 302 and response["Location"] == f"/dashboard/jobs/{new.pk}/"
    old_html = operator.get(f"/dashboard/jobs/{done.pk}/").content.decode()
    assert f'href="/dashboard/jobs/{new.pk}/"' in old_html
    assert 'href="/dashboard/runs/12345/"' in old_html and "load" in old_html
    assert '"rows": 3' in unescape(old_html)
    assert "job.rerun" in old_html  # the operator history
    new_html = operator.get(f"/dashboard/jobs/{new.pk}/").content.decode()
    assert f'href="/dashboard/jobs/{done.pk}/"' in new_html  # rerun of


# -- single-job actions -------------------------------------------------------------------------

def test_each_action_changes_the_job_and_writes_one_audit_entry(client_for, db):
    operator = client_for("operator")
    waiting = enqueue("tests.record", delay=600)
    response = csrf_post(operator, f"/dashboard/jobs/{waiting.pk}/cancel/",
                         {"reason": "not needed"}, REMOTE_ADDR="10.0.0.9")
    assert response.status_code == 302
    assert Job.objects.get(pk=waiting.pk).state == JobState.CANCELLED
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.object_ids, entry.reason, entry.actor, entry.ip) == (
        "job.cancel", [str(waiting.pk)], "not needed", "operator", "10.0.0.9")

    broken = dead_letter()
    csrf_post(operator, f"/dashboard/jobs/{broken.pk}/retry/", {"reason": "fixed upstream"})
    assert Job.objects.get(pk=broken.pk).state == JobState.SCHEDULED
    assert DeadLetter.objects.get(job=broken).resolution == DeadLetter.Resolution.RETRIED
    assert AuditEntry.objects.count() == 2 and AuditEntry.objects.first().action == "job.retry"

    other = dead_letter()
    csrf_post(operator, f"/dashboard/jobs/{other.pk}/discard/")
    assert DeadLetter.objects.get(job=other).resolution == DeadLetter.Resolution.DISCARDED
    assert AuditEntry.objects.count() == 3 and AuditEntry.objects.first().action == "job.discard"

    done = run(enqueue("tests.record", key="x"), output="x")
    before = set(Job.objects.values_list("id", flat=True))
    csrf_post(operator, f"/dashboard/jobs/{done.pk}/rerun/")
    (new,) = Job.objects.exclude(id__in=before)
    assert new.meta["rerun_of"] == done.pk and new.kwargs == {"key": "x"}
    assert AuditEntry.objects.count() == 4 and AuditEntry.objects.first().action == "job.rerun"
    # The follow-up page says what happened.
    page = operator.get(f"/dashboard/jobs/{new.pk}/")
    assert f"rerun as job #{new.pk}" in page.content.decode()


def test_an_action_the_state_refuses_changes_nothing(client_for, db):
    operator = client_for("operator")
    done = run(enqueue("tests.record"), output=None)
    response = csrf_post(operator, f"/dashboard/jobs/{done.pk}/cancel/",
                         {"next": f"/dashboard/jobs/{done.pk}/"})
    assert response.status_code == 302 and response["Location"] == f"/dashboard/jobs/{done.pk}/"
    assert Job.objects.get(pk=done.pk).state == JobState.SUCCESS
    assert not AuditEntry.objects.exists()
    page = operator.get(f"/dashboard/jobs/{done.pk}/").content.decode()
    assert "only waiting or running jobs can be cancelled" in page


def test_viewer_is_refused_every_action_and_nothing_changes(client_for, db):
    viewer = client_for("viewer")
    broken = dead_letter(api_key=SENTINEL)
    waiting = enqueue("tests.record", delay=600)
    done = run(enqueue("tests.record"), output=None)
    posts = [
        (f"/dashboard/jobs/{waiting.pk}/cancel/", {}),
        (f"/dashboard/jobs/{broken.pk}/retry/", {}),
        (f"/dashboard/jobs/{broken.pk}/discard/", {}),
        (f"/dashboard/jobs/{done.pk}/rerun/", {}),
        (f"/dashboard/jobs/{broken.pk}/edit-retry/", {"args": "[]", "kwargs": "{}"}),
        ("/dashboard/tasks/enqueue/", {"task": "tests.record", "kwargs": "{}"}),
    ]
    states = dict(Job.objects.values_list("id", "state"))
    for path, data in posts:
        assert csrf_post(viewer, path, data).status_code == 403, path
    assert dict(Job.objects.values_list("id", "state")) == states
    assert not AuditEntry.objects.exists()
    assert DeadLetter.objects.get(job=broken).resolved_at is None
    assert viewer.get(f"/dashboard/jobs/{broken.pk}/edit-retry/").status_code == 403
    assert viewer.get("/dashboard/tasks/enqueue/").status_code == 403


def test_actions_refuse_get_and_missing_csrf(client_for, db):
    operator = client_for("operator")
    broken = dead_letter()
    for name in ["cancel", "retry", "discard", "rerun"]:
        assert operator.get(f"/dashboard/jobs/{broken.pk}/{name}/").status_code == 405
        assert operator.post(f"/dashboard/jobs/{broken.pk}/{name}/").status_code == 403
    assert operator.post(f"/dashboard/jobs/{broken.pk}/edit-retry/",
                         {"args": "[]", "kwargs": "{}"}).status_code == 403
    assert operator.post("/dashboard/tasks/enqueue/", {"task": "tests.record"}).status_code == 403
    assert Job.objects.get(pk=broken.pk).state == JobState.DEAD_LETTER
    assert not AuditEntry.objects.exists()


def test_scoped_operator_acts_on_its_queue_only(client_for, db):
    scoped = client_for("scoped")
    mine = dead_letter(queue="team-a")
    theirs = dead_letter(queue="default")
    assert csrf_post(scoped, f"/dashboard/jobs/{mine.pk}/retry/").status_code == 302
    assert Job.objects.get(pk=mine.pk).state == JobState.SCHEDULED
    assert csrf_post(scoped, f"/dashboard/jobs/{theirs.pk}/retry/").status_code == 403
    assert Job.objects.get(pk=theirs.pk).state == JobState.DEAD_LETTER
    assert list(AuditEntry.objects.values_list("object_ids", flat=True)) == [[str(mine.pk)]]
    # Other work is visible read-only: the page shows, without buttons.
    html = scoped.get(f"/dashboard/jobs/{theirs.pk}/").content.decode()
    assert f"/dashboard/jobs/{theirs.pk}/retry/" not in html
    assert scoped.get(f"/dashboard/jobs/{theirs.pk}/edit-retry/").status_code == 403


# -- edit and retry -----------------------------------------------------------------------------

def test_edit_form_shows_arguments_with_secrets_masked(client_for, db):
    broken = dead_letter(api_key=SENTINEL, customer_id=1)
    response = client_for("operator").get(f"/dashboard/jobs/{broken.pk}/edit-retry/")
    assert response.status_code == 200
    html = response.content.decode()
    assert SENTINEL not in html and MASK in html and "customer_id" in html


def test_edit_retry_with_bad_json_shows_the_error(client_for, db):
    operator = client_for("operator")
    broken = dead_letter(customer_id=1)
    path = f"/dashboard/jobs/{broken.pk}/edit-retry/"
    for data, message in [({"args": "[]", "kwargs": "{customer_id: 2"}, "Not valid JSON"),
                          ({"args": '{"a": 1}', "kwargs": "{}"}, "Must be a JSON list"),
                          ({"args": "[]", "kwargs": "[1]"}, "Must be a JSON object")]:
        response = csrf_post(operator, path, data)
        assert response.status_code == 400
        html = unescape(response.content.decode())
        assert message in html and "field-error" in html
        assert data["kwargs"] in html  # what was typed is kept
    assert Job.objects.get(pk=broken.pk).state == JobState.DEAD_LETTER
    assert not AuditEntry.objects.exists()


def test_a_dead_letter_edited_and_retried_runs_with_the_new_arguments(client_for, db):
    operator = client_for("operator")
    broken = dead_letter(api_key=SENTINEL, customer_id=1)
    edited = {"api_key": MASK, "customer_id": 2}
    response = csrf_post(operator, f"/dashboard/jobs/{broken.pk}/edit-retry/",
                         {"args": "[]", "kwargs": json.dumps(edited), "reason": "typo in id"})
    assert response.status_code == 302
    assert response["Location"] == f"/dashboard/jobs/{broken.pk}/"
    job = Job.objects.get(pk=broken.pk)
    assert job.state == JobState.SCHEDULED
    assert job.kwargs == {"api_key": SENTINEL, "customer_id": 2}  # the masked secret is kept
    entry = AuditEntry.objects.get()
    assert entry.action == "job.edit_retry" and entry.reason == "typo in id"
    assert entry.details["old_arguments"]["kwargs"] == {"api_key": MASK, "customer_id": 1}
    assert entry.details["new_arguments"]["kwargs"] == {"api_key": MASK, "customer_id": 2}
    assert SENTINEL not in json.dumps(entry.details)
    assert SENTINEL not in operator.get(f"/dashboard/jobs/{broken.pk}/").content.decode()


def test_edit_retry_refuses_a_job_that_is_not_retryable(client_for, db):
    operator = client_for("operator")
    waiting = enqueue("tests.record", delay=600)
    response = operator.get(f"/dashboard/jobs/{waiting.pk}/edit-retry/")
    assert response.status_code == 409 and b"only failed, dead-lettered" in response.content
    response = csrf_post(operator, f"/dashboard/jobs/{waiting.pk}/edit-retry/",
                         {"args": "[]", "kwargs": "{}"})
    assert response.status_code == 409
    assert not AuditEntry.objects.exists()


# -- trigger a task -----------------------------------------------------------------------------

def test_trigger_a_task_from_the_form(client_for, db):
    operator = client_for("operator")
    page = operator.get("/dashboard/tasks/enqueue/")
    assert page.status_code == 200
    assert b'<option value="tests.record"' in page.content
    assert b"(key: str = &#x27;&#x27;)" in page.content  # the parameters, to guide the input
    response = csrf_post(operator, "/dashboard/tasks/enqueue/",
                         {"task": "tests.record", "kwargs": '{"key": "manual"}',
                          "queue": "reports", "reason": "backfill"})
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/dashboard/jobs/{job.pk}/"
    assert (job.task, job.queue, job.kwargs) == ("tests.record", "reports", {"key": "manual"})
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.reason, entry.object_ids) == (
        "task.enqueue", "backfill", [str(job.pk)])


@pytest.mark.parametrize("data, field, message", [
    ({"task": "", "kwargs": "{}"}, "task", "Choose a task"),
    ({"task": "no.such.task", "kwargs": "{}"}, "task", "No task named"),
    ({"task": "tests.record", "kwargs": "{oops"}, "kwargs", "Not valid JSON"),
    ({"task": "tests.record", "kwargs": "[1, 2]"}, "kwargs", "Must be a JSON object"),
    ({"task": "tests.record", "kwargs": '{"nope": 1}'}, "kwargs", "does not accept"),
    ({"task": "tests.sleep", "kwargs": "{}"}, "kwargs", "missing a required argument"),
    ({"task": "tests.record", "kwargs": "{}", "queue": "bad queue!"}, "queue", "letters"),
])
def test_trigger_form_errors_are_shown_in_the_form(client_for, db, data, field, message):
    response = csrf_post(client_for("operator"), "/dashboard/tasks/enqueue/", data)
    assert response.status_code == 400
    assert message in unescape(response.content.decode())
    assert field in response.context["errors"]
    assert not Job.objects.exists() and not AuditEntry.objects.exists()


def test_scoped_operator_triggers_only_into_its_queue(client_for, db):
    scoped = client_for("scoped")
    ok = csrf_post(scoped, "/dashboard/tasks/enqueue/",
                   {"task": "tests.record", "kwargs": "{}", "queue": "team-a"})
    assert ok.status_code == 302 and Job.objects.get().queue == "team-a"
    refused = csrf_post(scoped, "/dashboard/tasks/enqueue/",
                        {"task": "tests.record", "kwargs": "{}"})
    assert refused.status_code == 403 and Job.objects.count() == 1
    assert re.search(r"team-a", AuditEntry.objects.get().details["queue"])
