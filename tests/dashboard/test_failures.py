"""Failure groups (fingerprints, the groups page, "retry this group") and the dead-letters
page."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.db.models import Max, Min
from django.test import override_settings

from dashboard import fingerprints
from dashboard.fingerprints import fingerprint, normalise
from dashboard.models import AuditEntry, BulkOperation
from dashboard.tasks import run_operation
from queues import enqueue
from queues.models import DeadLetter, Execution, Job, JobState
from tests.dashboard.conftest import csrf_post
from tests.dashboard.test_bulk import make_dead_letters
from tests.jobs import dead_letter, run

GROUPS = "/dashboard/failures/"
RETRY = "/dashboard/failures/retry/"
LETTERS = "/dashboard/dead-letters/"


def failed(message: str, *, error_type: str = "RuntimeError", queue: str = "default",
           task: str = "tests.fail", attempts: int = 1) -> Job:
    """A job that failed `attempts` times with this error and is dead-lettered."""
    job = enqueue(task, queue=queue, max_attempts=attempts)
    for attempt in range(attempts):
        if attempt:
            time.sleep(0.12)  # the test backoff (0.05 s base) must pass before the next claim
        job = run(job, error=message, error_type=error_type, retryable=True)
    assert job.state == JobState.DEAD_LETTER
    return job


# -- normalisation ------------------------------------------------------------------------------

@pytest.mark.parametrize(("a", "b"), [
    ("Order 4711 not found", "Order 4712 not found"),
    ("user 550e8400-e29b-41d4-a716-446655440000 missing",
     "user 123e4567-e89b-12d3-a456-426614174000 missing"),
    ("cannot mail bob@example.com", "cannot mail alice.smith+x@corp.example.org"),
    ("KeyError 'customer_42'", "KeyError 'order'"),
    ('no column "total"', 'no column "amount"'),
    ("<Conn object at 0x7f3a2b1c9d00> closed", "<Conn object at 0x7f00aa11bb22> closed"),
    ("bad token sk_live_4eC39HqLyjWDarjtT1zdp7dc", "bad token sk_live_9xZ11QqLyjWDarjtT1zdp7aa"),
    ("commit 3f2a9c1d0e not found", "commit 9b8e7d6c5a not found"),
    ("timeout after 30.5s", "timeout after 2.25s"),
    ("  spaces\n\tand   lines ", "spaces and lines"),
])
def test_messages_differing_only_in_ids_normalise_alike(a, b):
    assert normalise(a) == normalise(b)
    assert fingerprint("tests.fail", "RuntimeError", a) == fingerprint(
        "tests.fail", "RuntimeError", b)


def test_placeholders_words_and_length():
    assert normalise("Order 4711 not found") == "Order <n> not found"
    assert normalise("can't connect to 'db-1'") == "can't connect to '<str>'"
    assert normalise("ConnectionRefusedError happened") == "ConnectionRefusedError happened"
    assert len(normalise("word " * 500)) <= fingerprints.MAX_NORMALISED
    assert normalise(None) == "" and normalise("") == ""


def test_fingerprint_separates_task_and_error_type_and_is_stable():
    base = fingerprint("tests.fail", "RuntimeError", "Order 1 not found")
    assert base != fingerprint("tests.fail", "ValueError", "Order 1 not found")
    assert base != fingerprint("tests.record", "RuntimeError", "Order 1 not found")
    assert base != fingerprint("tests.fail", "RuntimeError", "Customer 1 not found")
    assert len(base) == 16
    assert fingerprint("tests.fail", "RuntimeError", "Order 1 not found") == base


def test_fingerprint_value_is_pinned():
    """Stable across processes and releases: links and audit entries keep naming the same
    group."""
    import hashlib

    key = "tests.fail\x1fRuntimeError\x1fOrder <n> not found"
    assert fingerprint("tests.fail", "RuntimeError", "Order 77 not found") == (
        hashlib.sha256(key.encode()).hexdigest()[:16])


# -- groups -------------------------------------------------------------------------------------

def test_groups_merge_messages_and_count_attempts(db):
    a = failed("Order 41 not found", attempts=2)
    b = failed("Order 42 not found")
    other_type = failed("Order 43 not found", error_type="ValueError")
    report = fingerprints.groups(window="24h")
    by_fp = {g.fingerprint: g for g in report.groups}
    order = by_fp[fingerprint("tests.fail", "RuntimeError", "Order 1 not found")]
    assert (order.count, order.jobs, order.open_dead_letters, order.messages) == (3, 2, 2, 2)
    assert order.message == "Order <n> not found" and order.error_type == "RuntimeError"
    times = Execution.objects.filter(job__in=[a, b]).aggregate(first=Min("finished_at"),
                                                              last=Max("finished_at"))
    assert (order.first_seen, order.last_seen) == (times["first"], times["last"])
    value = by_fp[fingerprint("tests.fail", "ValueError", "Order 1 not found")]
    assert (value.count, value.open_dead_letters) == (1, 1)
    assert value.last_seen == Execution.objects.get(job=other_type).finished_at
    assert len(report.groups) == 2 and not report.truncated
    # Newest last-seen first.
    assert report.groups[0].fingerprint == value.fingerprint


def test_groups_page_shows_counts_and_the_bound(client_for, monkeypatch):
    failed("Order 41 not found")
    failed("Order 42 not found")
    failed("<script>alert(1)</script> in 7", error_type="ValueError")
    viewer = client_for("viewer")
    page = viewer.get(GROUPS).content.decode()
    fp = fingerprint("tests.fail", "RuntimeError", "Order 1 not found")
    assert f'data-fingerprint="{fp}"' in page and "Order &lt;n&gt; not found" in page
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert 'id="live"' in page and "Retry this group" not in page  # a viewer may not retry
    assert "most recent distinct failure messages" not in page
    operator_page = client_for("operator").get(GROUPS).content.decode()
    assert "Retry this group (2)" in operator_page
    assert 'data-confirm="Retry 2 open dead letters of this group' in operator_page
    monkeypatch.setattr(fingerprints, "MAX_MESSAGES", 2)
    page = viewer.get(GROUPS + "?window=30d").content.decode()
    assert "Only the 2 most recent distinct failure messages" in page


def test_retry_this_group_retries_exactly_its_open_dead_letters(client_for):
    group = [failed(f"Order {n} not found") for n in (41, 42, 43)]
    discarded = failed("Order 44 not found")
    other_type = failed("Order 45 not found", error_type="ValueError")
    other_task = dead_letter("tests.fail_until_fixed", error="Order 46 not found")
    other_message = failed("Customer 47 not found")
    operator = client_for("operator")
    csrf_post(operator, "/dashboard/jobs/bulk/", {"action": "discard", "ids": [discarded.pk]})
    before = AuditEntry.objects.count()
    fp = fingerprint("tests.fail", "RuntimeError", "Order 1 not found")
    response = csrf_post(operator, RETRY, {"fingerprint": fp, "window": "7d",
                                           "reason": "orders synced", "next": GROUPS},
                         REMOTE_ADDR="10.9.8.7")
    assert response.status_code == 302 and response["Location"] == GROUPS
    states = dict(Job.objects.values_list("id", "state"))
    assert {states[j.pk] for j in group} == {JobState.SCHEDULED}
    for untouched in (discarded, other_type, other_task, other_message):
        assert states[untouched.pk] == JobState.DEAD_LETTER
    assert set(DeadLetter.objects.filter(resolution="retried").values_list("job_id", flat=True)
               ) == {j.pk for j in group}
    assert AuditEntry.objects.count() == before + 1
    entry = AuditEntry.objects.first()
    assert (entry.action, entry.count, entry.reason, entry.ip) == (
        "failure_group.retry", 3, "orders synced", "10.9.8.7")
    assert entry.details["fingerprint"] == fp and entry.details["window"] == "7d"
    assert sorted(entry.object_ids) == sorted(str(j.pk) for j in group)
    assert "Retried 3." in operator.get(GROUPS).content.decode()
    # Again: nothing open in the group any more, refused without an entry.
    csrf_post(operator, RETRY, {"fingerprint": fp, "window": "7d"})
    assert AuditEntry.objects.count() == before + 1


def test_large_group_retries_in_the_background_by_fingerprint(client_for, users):
    group = [failed(f"Order {n} not found").pk for n in range(4)]
    others = [failed(f"Customer {n} not found").pk for n in range(2)]
    fp = fingerprint("tests.fail", "RuntimeError", "Order 1 not found")
    with override_settings(RELAY={**settings.RELAY, "BULK_INLINE_LIMIT": 2, "BULK_PAUSE": 0,
                                  "BULK_BATCH": 2}):
        response = csrf_post(client_for("operator"), RETRY, {"fingerprint": fp, "window": "24h"})
        op = BulkOperation.objects.get()
        assert response["Location"] == f"/dashboard/jobs/bulk/{op.pk}/"
        assert op.expected == 4 and op.filter["fingerprint"] == fp
        late = failed("Order 99 not found").pk  # joins the group after the click: not touched
        assert run_operation(op.pk)["done"] == 4
    states = dict(Job.objects.values_list("id", "state"))
    assert {states[i] for i in group} == {JobState.SCHEDULED}
    assert {states[i] for i in [*others, late]} == {JobState.DEAD_LETTER}
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.object_type, entry.count) == (
        "failure_group.retry", "bulk_operation", 4)
    assert entry.details["fingerprint"] == fp and entry.details["background"] is True


def test_viewer_cannot_retry_a_group(client_for):
    job = failed("Order 1 not found")
    fp = fingerprint("tests.fail", "RuntimeError", "Order 1 not found")
    assert csrf_post(client_for("viewer"), RETRY, {"fingerprint": fp}).status_code == 403
    assert client_for("operator").get(RETRY).status_code == 405
    assert client_for("operator").post(RETRY, {"fingerprint": fp}).status_code == 403  # no CSRF
    assert Job.objects.get(pk=job.pk).state == JobState.DEAD_LETTER
    assert not AuditEntry.objects.exists()


def test_groups_respect_hidden_scopes(client_for):
    from django.contrib.auth.models import Group

    from dashboard.models import RoleScope

    failed("Order 1 not found", queue="team-a")
    failed("Order 2 not found", queue="billing")
    RoleScope.objects.filter(group=Group.objects.get(name="Team A operators")).update(
        others="hidden")
    page = client_for("scoped").get(GROUPS).content.decode()
    assert "Retry this group (1)" in page


# -- dead letters page --------------------------------------------------------------------------

def test_dead_letters_page_lists_open_letters_escaped_with_bulk_controls(client_for):
    job = dead_letter(error="<script>alert('x')</script> for order 5", queue="reports")
    dead_letter(queue="billing")
    operator = client_for("operator")
    page = operator.get(LETTERS).content.decode()
    assert 'id="live"' in page and f'href="/dashboard/jobs/{job.pk}/"' in page
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    assert f'name="ids" value="{job.pk}" form="dl-bulk"' in page
    assert "data-select-all" in page and 'action="/dashboard/jobs/bulk/"' in page
    assert 'value="filter"' in page and "data-confirm=" in page
    filtered = operator.get(LETTERS + "?queue=billing").content.decode()
    assert f"#{job.pk}<" not in filtered
    assert 'name="filter" value="state=dead_letter&amp;queue=billing&amp;dead_letter=open"' \
        in filtered
    viewer_page = client_for("viewer").get(LETTERS).content.decode()
    assert f"#{job.pk}<" in viewer_page and 'name="ids"' not in viewer_page


def test_dead_letters_keyset_pages_newest_first(client_for):
    ids = make_dead_letters(55, "reports")
    viewer = client_for("viewer")
    first = viewer.get(LETTERS).content.decode()
    assert f"#{ids[-1]}<" in first and f"#{ids[4]}<" not in first
    letter_ids = list(DeadLetter.objects.order_by("-id").values_list("id", flat=True))
    assert f"after={letter_ids[49]}" in first
    second = viewer.get(f"{LETTERS}?after={letter_ids[49]}").content.decode()
    assert f"#{ids[4]}<" in second and f"#{ids[-1]}<" not in second
    assert "after=" not in second.split('rel="first"')[-1]  # no further page


def test_resolved_letters_show_who_when_why(client_for):
    job = dead_letter(queue="reports")
    operator = client_for("operator")
    csrf_post(operator, "/dashboard/jobs/bulk/",
              {"action": "discard", "ids": [job.pk], "reason": "customer deleted"})
    assert f"#{job.pk}<" not in operator.get(LETTERS).content.decode()
    page = operator.get(LETTERS + "?show=resolved").content.decode()
    assert f"#{job.pk}<" in page and "discarded" in page
    assert "by operator" in page and "customer deleted" in page


def test_dead_letters_filter_errors_are_shown(client_for):
    page = client_for("viewer").get(LETTERS + "?since=yesterday-ish").content.decode()
    assert "Filter since:" in page


def test_scoped_operator_can_select_only_its_own_dead_letters(client_for):
    mine = dead_letter(queue="team-a")
    theirs = dead_letter(queue="billing")
    page = client_for("scoped").get(LETTERS).content.decode()
    assert f"#{theirs.pk}<" in page  # others are visible read-only
    assert f'name="ids" value="{mine.pk}"' in page
    assert f'name="ids" value="{theirs.pk}"' not in page
