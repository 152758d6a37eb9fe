"""Bulk actions: a selection at once, "all matching this filter" after a confirmation with the
exact count, large matches in the background, exactly one audit entry, 403 for viewers."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.db.models import Count, Max
from django.test import override_settings
from django.utils import timezone

from dashboard.models import AuditEntry, BulkOperation
from dashboard.tasks import bulk_operation, run_operation
from queues.models import DeadLetter, Job, JobState
from tests.dashboard.conftest import csrf_post
from tests.jobs import dead_letter

BULK = "/dashboard/jobs/bulk/"


def make_dead_letters(count: int, queue: str, *, message: str = "boom") -> list[int]:
    """Fixture data, fast: `count` jobs put straight into the dead_letter state, each with its
    open DeadLetter row -- what `tests.jobs.dead_letter` produces through claim and fail,
    without a dozen round trips per job. A few rows come from bulk_create, the rest are
    copies of them made by INSERT ... SELECT (portable SQL, doubling each time), so 20,000
    take well under a second on both databases. Only tests write rows like this; the
    dashboard changes jobs through queues' public functions. On PostgreSQL the tables are
    ANALYZEd afterwards, as autovacuum would: without statistics the planner picks plans no
    production table would get."""
    now = timezone.now()
    before = Job.objects.aggregate(top=Max("id"))["top"] or 0
    seed = min(count, 100)
    Job.objects.bulk_create(
        [Job(task="tests.fail", queue=queue, state=JobState.DEAD_LETTER, finished_at=now,
             attempts=1, max_attempts=1, ack_timeout=30.0, kwargs={"n": i},
             last_error_type="RuntimeError", last_error_message=f"{message} {i}")
         for i in range(seed)])
    columns = ", ".join(connection.ops.quote_name(f.column)
                        for f in Job._meta.concrete_fields if not f.primary_key)
    made = seed
    with connection.cursor() as cursor:
        while made < count:
            step = min(made, count - made)
            cursor.execute(
                f"INSERT INTO queues_job ({columns}) SELECT {columns} FROM queues_job "
                f"WHERE queue = %s AND id > %s ORDER BY id LIMIT %s", [queue, before, step])
            made += step
        cursor.execute(
            "INSERT INTO queues_deadletter (job_id, reason, error_type, error_message, "
            "attempts, resolution, resolution_note) SELECT id, %s, last_error_type, "
            "last_error_message, attempts, '', '' FROM queues_job WHERE queue = %s AND id > %s "
            "ORDER BY id",
            [DeadLetter.Reason.NOT_RETRYABLE, queue, before])
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE queues_job, queues_deadletter")
    ids = list(Job.objects.filter(queue=queue, id__gt=before).order_by("id")
               .values_list("id", flat=True))
    assert len(ids) == count
    return ids


# -- a selection --------------------------------------------------------------------------------

def test_selection_retry_acts_at_once_with_one_audit_entry(client_for):
    jobs = [dead_letter(error=f"boom {i}") for i in range(3)]
    keep = dead_letter(error="other")
    operator = client_for("operator")
    response = csrf_post(operator, BULK, {
        "action": "retry", "ids": [j.pk for j in jobs], "reason": "db is back",
        "next": "/dashboard/dead-letters/"}, REMOTE_ADDR="10.0.0.7")
    assert response.status_code == 302 and response["Location"] == "/dashboard/dead-letters/"
    assert set(Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("state", flat=True)) \
        == {JobState.SCHEDULED}
    assert Job.objects.get(pk=keep.pk).state == JobState.DEAD_LETTER
    assert set(DeadLetter.objects.filter(job__in=jobs).values_list("resolution", flat=True)) \
        == {DeadLetter.Resolution.RETRIED}
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.object_type, entry.count, entry.reason, entry.ip) == (
        "job.bulk_retry", "job", 3, "db is back", "10.0.0.7")
    assert sorted(entry.object_ids) == sorted(str(j.pk) for j in jobs)
    page = operator.get("/dashboard/dead-letters/")
    assert b"Retried 3." in page.content


def test_selection_reports_skips_with_reasons(client_for):
    dead = dead_letter()
    done = Job.objects.get(pk=dead.pk)
    csrf_post(client_for("operator"), BULK, {"action": "retry", "ids": [done.pk]})
    operator = client_for("operator")
    response = csrf_post(operator, BULK, {"action": "discard", "ids": [done.pk, 999999]},
                         follow=True)
    text = response.content.decode()
    assert "Discarded 0, skipped 2" in text and "not found" in text
    assert AuditEntry.objects.count() == 1  # only the retry: nothing changed the second time


def test_viewer_gets_403_and_nothing_changes(client_for):
    job = dead_letter()
    viewer = client_for("viewer")
    for data in ({"action": "retry", "ids": [job.pk]},
                 {"action": "retry", "scope": "filter", "filter": "state=dead_letter"},
                 {"action": "retry", "scope": "filter", "filter": "state=dead_letter",
                  "confirm": "1", "expected": "1"}):
        assert csrf_post(viewer, BULK, data).status_code == 403
    assert Job.objects.get(pk=job.pk).state == JobState.DEAD_LETTER
    assert not AuditEntry.objects.exists() and not BulkOperation.objects.exists()


def test_bulk_refuses_get_and_missing_csrf(client_for):
    job = dead_letter()
    operator = client_for("operator")
    assert operator.get(BULK).status_code == 405
    assert operator.post(BULK, {"action": "retry", "ids": [job.pk]}).status_code == 403
    assert Job.objects.get(pk=job.pk).state == JobState.DEAD_LETTER


def test_scoped_operator_only_acts_in_its_queue(client_for):
    mine = dead_letter(queue="team-a")
    theirs = dead_letter(queue="billing")
    response = csrf_post(client_for("scoped"), BULK, {"action": "retry",
                                                      "ids": [mine.pk, theirs.pk]}, follow=True)
    assert "Retried 1, skipped 1 (1 x not permitted)" in response.content.decode()
    assert Job.objects.get(pk=mine.pk).state == JobState.SCHEDULED
    assert Job.objects.get(pk=theirs.pk).state == JobState.DEAD_LETTER


# -- all matching a filter ----------------------------------------------------------------------

def test_small_filter_match_runs_inline_after_confirmation(client_for):
    reports = [dead_letter(queue="reports") for _ in range(3)]
    billing = dead_letter(queue="billing")
    operator = client_for("operator")
    data = {"action": "discard", "scope": "filter", "filter": "state=dead_letter&queue=reports",
            "reason": "obsolete", "next": "/dashboard/dead-letters/"}
    confirm = csrf_post(operator, BULK, data)
    assert confirm.status_code == 200
    assert b"Discard 3 jobs matching:" in confirm.content
    assert b"state=dead_letter queue=reports" in confirm.content
    assert not AuditEntry.objects.exists() and not DeadLetter.objects.filter(
        resolved_at__isnull=False).exists()
    response = csrf_post(operator, BULK, {**data, "confirm": "1", "expected": "3"})
    assert response.status_code == 302
    assert set(DeadLetter.objects.filter(job__in=reports).values_list("resolution", flat=True)) \
        == {DeadLetter.Resolution.DISCARDED}
    assert DeadLetter.objects.get(job=billing).resolved_at is None
    entry = AuditEntry.objects.get()
    assert entry.action == "job.bulk_discard" and entry.count == 3
    assert entry.details["filter"] == {"state": ["dead_letter"], "queue": ["reports"]}


def test_confirmation_asks_again_when_the_count_changed(client_for):
    dead_letter(queue="reports")
    operator = client_for("operator")
    data = {"action": "retry", "scope": "filter", "filter": "state=dead_letter&queue=reports"}
    dead_letter(queue="reports")  # a second one lands after the operator saw "1"
    response = csrf_post(operator, BULK, {**data, "confirm": "1", "expected": "1"})
    assert response.status_code == 200
    assert b"changed from 1 to 2" in response.content
    assert not AuditEntry.objects.exists()
    assert Job.objects.filter(state=JobState.DEAD_LETTER).count() == 2


def test_filter_errors_and_empty_filters_are_refused(client_for):
    job = dead_letter()
    operator = client_for("operator")
    for raw, text in (("state=nonsense", "unknown state"), ("", "Narrow the list")):
        response = csrf_post(operator, BULK, {"action": "retry", "scope": "filter",
                                              "filter": raw}, follow=True)
        assert text in response.content.decode()
    assert Job.objects.get(pk=job.pk).state == JobState.DEAD_LETTER
    assert not AuditEntry.objects.exists()


def test_dead_letters_page_filter_excludes_discarded_letters(client_for):
    """"All matching" on the dead-letters page means the open ones it lists: a discarded
    dead letter (its job stays dead_letter) is not revived."""
    discarded = dead_letter(queue="reports")
    open_one = dead_letter(queue="reports")
    operator = client_for("operator")
    csrf_post(operator, BULK, {"action": "discard", "ids": [discarded.pk]})
    page = operator.get("/dashboard/dead-letters/?queue=reports").content.decode()
    assert f"#{open_one.pk}" in page and f"#{discarded.pk}<" not in page
    # the page's hidden filter, as the form posts it
    assert 'name="filter" value="state=dead_letter&amp;queue=reports&amp;dead_letter=open"' in page
    data = {"action": "retry", "scope": "filter",
            "filter": "state=dead_letter&queue=reports&dead_letter=open"}
    assert b"Retry 1 job matching" in csrf_post(operator, BULK, data).content
    csrf_post(operator, BULK, {**data, "confirm": "1", "expected": "1"})
    assert Job.objects.get(pk=open_one.pk).state == JobState.SCHEDULED
    assert Job.objects.get(pk=discarded.pk).state == JobState.DEAD_LETTER


def test_a_filter_matching_10000_of_20000_dead_letters_retries_exactly_those(client_for,
                                                                              users):
    """The issue's test: the confirmation shows 10,000, the background operation retries
    exactly the 10,000 reports dead letters, leaves the billing ones alone, does not touch
    jobs that start matching after the confirmation, and writes one audit entry."""
    reports = make_dead_letters(10_000, "reports")
    billing = make_dead_letters(10_000, "billing")
    operator = client_for("operator")
    data = {"action": "retry", "scope": "filter", "filter": "state=dead_letter&queue=reports",
            "reason": "report service fixed", "next": "/dashboard/dead-letters/"}

    confirm = csrf_post(operator, BULK, data)
    assert confirm.status_code == 200
    assert b"Retry 10,000 jobs matching:" in confirm.content
    assert b"state=dead_letter queue=reports" in confirm.content
    assert b'name="expected" value="10000"' in confirm.content
    assert not AuditEntry.objects.exists() and not BulkOperation.objects.exists()

    response = csrf_post(operator, BULK, {**data, "confirm": "1", "expected": "10000"})
    op = BulkOperation.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/dashboard/jobs/bulk/{op.pk}/"
    assert (op.action, op.expected, op.state, op.max_job_id) == (
        "retry", 10_000, BulkOperation.State.PENDING, max(reports))
    # The background job is enqueued on the "relay" queue.
    assert Job.objects.filter(task="relay.bulk_operation", queue="relay",
                              args=[op.pk]).exists()
    # Dead letters that start matching after the confirmation are not touched.
    late = make_dead_letters(5, "reports")

    with override_settings(RELAY={**settings.RELAY, "BULK_PAUSE": 0, "BULK_BATCH": 1000}):
        outcome = run_operation(op.pk)
    assert outcome == {"done": 10_000, "skipped": 0, "state": BulkOperation.State.DONE}

    states = dict(Job.objects.filter(pk__in=reports).values_list("state").annotate(
        n=Count("id")).order_by())
    assert states == {JobState.SCHEDULED: 10_000}
    assert not Job.objects.filter(pk__in=billing).exclude(state=JobState.DEAD_LETTER).exists()
    assert not Job.objects.filter(pk__in=late).exclude(state=JobState.DEAD_LETTER).exists()
    retried = set(DeadLetter.objects.filter(resolution=DeadLetter.Resolution.RETRIED)
                  .values_list("job_id", flat=True))
    assert retried == set(reports)
    assert DeadLetter.objects.filter(resolved_at__isnull=True).count() == 10_005
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.object_type, entry.object_ids, entry.count) == (
        "job.bulk_retry", "bulk_operation", [str(op.pk)], 10_000)
    assert entry.details["filter"] == {"state": ["dead_letter"], "queue": ["reports"]}
    op.refresh_from_db()
    assert (op.state, op.done, op.skipped, op.cursor) == (
        BulkOperation.State.DONE, 10_000, 0, max(reports))
    status = operator.get(f"/dashboard/jobs/bulk/{op.pk}/").content.decode()
    assert 'id="live"' in status and "10000" in status and "done" in status
    # Running it again (a redelivery after the end) changes nothing.
    assert run_operation(op.pk)["done"] == 10_000
    assert AuditEntry.objects.count() == 1


def test_background_operation_resumes_from_its_cursor_and_rechecks_permissions(client_for,
                                                                               users):
    ids = make_dead_letters(6, "team-a") + make_dead_letters(4, "billing")
    op = BulkOperation.objects.create(
        action="retry", filter={"state": ["dead_letter"]}, max_job_id=max(ids),
        created_by=users["scoped"], expected=10, cursor=ids[2])  # 3 done by an earlier run
    with override_settings(RELAY={**settings.RELAY, "BULK_PAUSE": 0, "BULK_BATCH": 2}):
        outcome = run_operation(op.pk)
    assert outcome["done"] == 3 and outcome["skipped"] == 4  # billing: not permitted
    assert list(Job.objects.filter(pk__in=ids[:3]).values_list("state", flat=True)) == [
        JobState.DEAD_LETTER] * 3
    assert set(Job.objects.filter(pk__in=ids[3:6]).values_list("state", flat=True)) == {
        JobState.SCHEDULED}


def test_operation_with_a_bad_filter_fails_without_retrying(users):
    op = BulkOperation.objects.create(action="retry", filter={"state": ["bogus"]},
                                      max_job_id=10, created_by=users["operator"])
    assert run_operation(op.pk)["state"] == BulkOperation.State.FAILED
    op.refresh_from_db()
    assert "invalid filter" in op.error and op.finished_at is not None


def test_the_task_is_registered_and_takes_a_context():
    assert bulk_operation.name == "relay.bulk_operation"
    assert bulk_operation.queue == "relay" and bulk_operation.takes_context


def test_status_page_is_private_to_its_creator_for_hidden_scopes(client_for, users):
    from django.contrib.auth.models import Group

    from dashboard.models import RoleScope

    op = BulkOperation.objects.create(action="retry", filter={"queue": ["billing"]},
                                      max_job_id=1, created_by=users["operator"], expected=4)
    assert client_for("viewer").get(f"{BULK}{op.pk}/").status_code == 200
    RoleScope.objects.filter(group=Group.objects.get(name="Team A operators")).update(
        others="hidden")
    assert client_for("scoped").get(f"{BULK}{op.pk}/").status_code == 404
