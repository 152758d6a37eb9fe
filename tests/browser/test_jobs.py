"""An operator at 2 a.m.: finds the failed job by the text of its error, reads its traceback;
retries a dead letter once the bug is fixed and watches a real worker run it to success."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from dashboard.models import AuditEntry
from queues import enqueue
from queues.models import Job, JobState
from tests.conftest import wait_for
from tests.jobs import run
from tests.testapp.models import Switch

pytestmark = pytest.mark.slow

TRACEBACK = """Traceback (most recent call last):
  File "/srv/app/billing/tasks.py", line 88, in charge_invoice
    gateway.charge(invoice.card, invoice.total)
  File "/srv/app/billing/gateway.py", line 41, in charge
    raise CardDeclined(response["reason"])
billing.gateway.CardDeclined: card declined for invoice 4411
"""


def test_operator_finds_a_failed_job_by_its_error_text_and_reads_the_traceback(login):
    run(enqueue("tests.record", key="invoice-4410"), output="invoice-4410")
    run(enqueue("tests.fail", message="smtp timeout", max_attempts=3), error="smtp timeout")
    wanted = run(enqueue("tests.fail", message="charge", max_attempts=3),
                 error="card declined for invoice 4411", error_type="CardDeclined",
                 traceback=TRACEBACK)
    assert wanted.state == JobState.FAILED
    enqueue("tests.record", key="card declined")  # the text in arguments matches too

    page = login("operator")
    page.goto("/dashboard/jobs/")
    page.get_by_label("Text in arguments or error").fill("declined for invoice")
    page.get_by_role("button", name="Filter").click()

    # The filter lives in the URL, so the search can be shared.
    expect(page).to_have_url(re.compile(r"[?&]q=declined\+for\+invoice"))
    rows = page.locator("table.jobs tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("card declined for invoice 4411")
    expect(rows.first.locator(".badge")).to_have_text("failed")

    rows.first.get_by_role("link", name=f"#{wanted.pk}").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Job #{wanted.pk}")
    attempt = page.locator("article.attempt").first
    expect(attempt).to_contain_text("Attempt 1")
    expect(attempt).to_contain_text("CardDeclined")
    traceback = attempt.locator("pre.traceback")
    expect(traceback).to_be_visible()
    expect(traceback).to_contain_text('File "/srv/app/billing/gateway.py", line 41, in charge')
    expect(traceback).to_contain_text("billing.gateway.CardDeclined: card declined for invoice")


def test_operator_retries_a_dead_letter_and_sees_it_succeed(login, start_worker):
    worker = start_worker()
    job = enqueue("tests.fail_until_fixed", max_attempts=1)
    wait_for(lambda: Job.objects.filter(pk=job.pk, state=JobState.DEAD_LETTER).exists(),
             message="the job to be dead-lettered by the worker")

    page = login("operator")
    page.goto(f"/dashboard/jobs/{job.pk}/")
    heading = page.get_by_role("heading", level=1)
    expect(heading.locator(".badge")).to_have_text("dead letter")
    expect(page.locator("article.attempt").first).to_contain_text("not fixed yet")

    Switch.objects.create(name="fixed")  # the fix is deployed
    page.get_by_label("Refresh interval").select_option("2")
    page.get_by_label("Reason for retry").fill("fix deployed")
    page.get_by_role("button", name="Retry", exact=True).click()

    expect(page.locator(".messages")).to_be_visible()
    expect(heading.locator(".badge")).to_have_text("success", timeout=20_000)
    expect(page.locator("article.attempt")).to_have_count(2)
    expect(page.locator("pre.result")).to_contain_text("fixed")
    assert Job.objects.get(pk=job.pk).state == JobState.SUCCESS, worker.log()
    assert list(AuditEntry.objects.values_list("actor", "action", "reason")) == [
        ("operator", "job.retry", "fix deployed")]


def test_a_running_job_page_follows_the_job_to_its_end_by_itself(login, start_worker):
    """Live refresh at the interval the user picks, with no reload by hand; when the job ends
    its page shows the final state (result and all) and stops refreshing."""
    worker = start_worker()
    job = enqueue("tests.sleep", seconds=1.5)
    wait_for(lambda: Job.objects.filter(pk=job.pk, state=JobState.RUNNING).exists(),
             message=f"the worker to start the job; its log:\n{worker.log_path}")

    page = login("viewer")
    page.goto(f"/dashboard/jobs/{job.pk}/")
    page.get_by_label("Refresh interval").select_option("2")
    badge = page.get_by_role("heading", level=1).locator(".badge")
    expect(badge).to_have_text("running")
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)  # a viewer
    expect(badge).to_have_text("success", timeout=20_000)
    expect(page.locator("pre.result")).to_have_text("1.5")
    expect(page.locator("#live")).to_have_count(0)


def test_operator_retries_a_selected_dead_letter_from_the_list(login, start_worker):
    start_worker()
    broken = enqueue("tests.fail", message="still broken", max_attempts=1)
    fixable = enqueue("tests.fail_until_fixed", max_attempts=1)
    wait_for(lambda: Job.objects.filter(state=JobState.DEAD_LETTER).count() == 2,
             message="both jobs to be dead-lettered by the worker")

    page = login("operator")
    page.goto("/dashboard/")
    page.get_by_role("link", name="Dead letters", exact=True).click()
    rows = page.locator("table.dead-letters tbody tr")
    expect(rows).to_have_count(2)
    row = rows.filter(has=page.get_by_role("link", name=f"#{fixable.pk}", exact=True))
    expect(row).to_contain_text("not fixed yet")

    Switch.objects.create(name="fixed")  # the fix is deployed
    row.get_by_label(f"Select job {fixable.pk}").check()
    bar = page.locator("#dl-bulk")
    bar.get_by_label("Bulk action").select_option("retry")
    bar.get_by_placeholder("reason (optional)").fill("fix deployed")
    bar.get_by_role("button", name="Apply to selected").click()

    expect(page.locator(".messages")).to_contain_text("Retried 1")
    expect(rows).to_have_count(1)  # only the one still broken is left open
    expect(rows.first).to_contain_text(f"#{broken.pk}")

    page.goto(f"/dashboard/jobs/{fixable.pk}/")
    badge = page.get_by_role("heading", level=1).locator(".badge")
    expect(badge).to_have_text("success", timeout=20_000)
    expect(page.locator("pre.result")).to_contain_text("fixed")
    assert Job.objects.get(pk=broken.pk).state == JobState.DEAD_LETTER
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.object_ids, entry.reason) == (
        "operator", "job.bulk_retry", [str(fixable.pk)], "fix deployed")
