"""relay_seed makes consistent rows on both databases; relay_dashboard_bench renders and
reports every page (timings are not asserted: this checks the tools, not the machine)."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Count, Max

from dashboard.management.commands.relay_seed import SQLITE_MAX_JOBS
from dashboard.views.base import PAGE_SIZE
from queues.models import (
    TERMINAL_STATES,
    DeadLetter,
    Execution,
    Job,
    JobState,
    Outcome,
    Worker,
)

LAST_OUTCOME = {  # the last attempt's outcome, per job state
    JobState.SUCCESS: Outcome.SUCCESS, JobState.DEAD_LETTER: Outcome.ERROR,
    JobState.FAILED: Outcome.ERROR, JobState.CANCELLED: Outcome.CANCELLED,
    JobState.SCHEDULED: Outcome.LOST, JobState.RUNNING: None,
}


def seed(**options) -> str:
    out = io.StringIO()
    call_command("relay_seed", stdout=out, **options)
    return out.getvalue()


def assert_database_constraints_hold() -> None:
    """Foreign keys are deferred (checked at commit, which a test never reaches): ask now."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        else:
            cursor.execute("PRAGMA foreign_key_check")
            assert cursor.fetchall() == []


def test_seed_makes_consistent_rows(db):
    output = seed(jobs=200, executions_per_job=2, batch=70)
    assert "Seeded 200 jobs, 400 executions" in output

    assert Job.objects.count() == 200
    assert Execution.objects.count() == 400  # jobs x N: attempts cycle N-1, N, N+1, N
    assert not Execution.objects.exclude(job_id__in=Job.objects.values("id")).exists()
    assert_database_constraints_hold()

    states = set(Job.objects.values_list("state", flat=True))
    assert {JobState.SUCCESS, JobState.DEAD_LETTER, JobState.RUNNING,
            JobState.SCHEDULED} <= states
    assert len(set(Job.objects.values_list("queue", flat=True))) >= 5
    assert Worker.objects.count() == 6

    executions = {
        row["job_id"]: row for row in Execution.objects.values("job_id").annotate(
            n=Count("id"), tokens=Count("lease_token", distinct=True),
            last_token=Max("lease_token"))}
    for job in Job.objects.all():
        # finished_at iff terminal (the check constraint), and what the store would write
        assert (job.finished_at is not None) == (job.state in TERMINAL_STATES), job
        assert executions[job.pk]["n"] == executions[job.pk]["tokens"] == job.attempts
        assert executions[job.pk]["last_token"] == job.lease_token
        assert job.created_at <= job.started_at
        assert (job.leased_until is not None) == (job.state == JobState.RUNNING)
        assert isinstance(job.kwargs, dict) and isinstance(job.tags, list)
        last = job.executions.get(lease_token=job.lease_token)
        assert last.outcome == LAST_OUTCOME[job.state], (job, last)
        if job.state == JobState.SUCCESS:
            assert job.result and last.output == job.result and not job.last_error_type
        if job.state in (JobState.DEAD_LETTER, JobState.FAILED):
            assert job.last_error_message and last.error_message == job.last_error_message
            assert last.traceback.startswith("Traceback (most recent call last):")
            assert last.traceback.rstrip().endswith(
                f"{job.last_error_type}: {job.last_error_message}")
        if job.state == JobState.RUNNING:
            assert last.finished_at is None
            assert job.worker.state == Worker.State.RUNNING
        if job.state == JobState.DEAD_LETTER:
            letter = job.dead_letters.get()
            assert (letter.error_type, letter.attempts) == (job.last_error_type, job.attempts)
        else:
            assert not job.dead_letters.exists()
    # every earlier attempt ended before the next one started
    for execution in Execution.objects.filter(attempt__gt=1).select_related("job"):
        previous = execution.job.executions.get(attempt=execution.attempt - 1)
        assert previous.finished_at is not None and previous.finished_at <= execution.started_at
    assert Job.objects.filter(kwargs__has_key="customer_id").exists()
    assert DeadLetter.objects.filter(resolved_at__isnull=True, resolution="").exists()


def test_seed_refuses_a_table_with_jobs_unless_appending(db):
    seed(jobs=40)
    with pytest.raises(CommandError, match="not empty"):
        seed(jobs=40)
    seed(jobs=40, append=True)
    assert Job.objects.count() == 80
    assert Execution.objects.count() == 160
    assert_database_constraints_hold()
    # new jobs still get fresh ids after the seeded ones
    from queues import enqueue

    job = enqueue("tests.record", "after the seed")
    assert job.pk > Job.objects.exclude(pk=job.pk).aggregate(m=Max("id"))["m"]


def test_seed_validates_its_options(db, vendor):
    for bad in ({"jobs": 0}, {"executions_per_job": 0}, {"failed_fraction": 0.9}):
        with pytest.raises(CommandError):
            seed(**{"jobs": 10, **bad})
    if vendor == "sqlite":
        with pytest.raises(CommandError, match="PostgreSQL"):
            seed(jobs=SQLITE_MAX_JOBS + 1)
    assert not Job.objects.exists()


def test_dashboard_bench_renders_every_page_and_prints_its_table(db, tmp_path):
    seed(jobs=200, executions_per_job=2)
    out = io.StringIO()
    report = tmp_path / "bench.json"
    call_command("relay_dashboard_bench", runs=1, json=str(report), stdout=out)
    text = out.getvalue()
    print(text)
    assert "200 jobs, 400 executions" in text
    assert "median" in text and "p95" in text
    result = json.loads(report.read_text())
    pages = {page["name"].split(" (")[0]: page for page in result["pages"]}
    for name in ("jobs list", "filtered search", "job detail"):
        page = pages[name]
        assert page["required"] and page["status"] == 200, page
        assert page["verdict"] in ("PASS", "FAIL") and page["median_ms"] > 0
        assert f"{name}" in text
    assert pages["filtered search"]["url"].startswith("/dashboard/jobs/?state=")
    assert pages["filtered search"]["rows"] >= 1  # it finds the job its phrase came from
    assert pages["jobs list"]["rows"] == PAGE_SIZE  # one page of the 200 jobs
    detail = Job.objects.get(pk=int(pages["job detail"]["url"].split("/")[-2]))
    assert detail.executions.count() == 2
    # the throwaway superuser is gone again
    assert not get_user_model().objects.filter(username="relay-dashboard-bench").exists()


def test_dashboard_bench_needs_jobs(db):
    with pytest.raises(CommandError, match="seed first"):
        call_command("relay_dashboard_bench", runs=1, stdout=io.StringIO())
