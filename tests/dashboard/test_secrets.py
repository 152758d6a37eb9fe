"""Secrets stay out of sight, and hostile text stays text.

A job whose arguments hold {"api_key": "SENTINEL-..."} (also nested, also in a workflow run's
input) and whose error contains a <script> tag: after operators act on it through the
dashboard, the sentinel appears in no dashboard page, no admin page and no audit entry, and
the script tag is rendered escaped.
"""

from __future__ import annotations

import json

from django.urls import reverse

from dashboard.models import AuditEntry
from queues.models import DeadLetter, Execution, Job
from scheduler import engine
from scheduler.models import StepRun
from tests.dashboard.conftest import csrf_post
from tests.dashboard.test_runs import OTHER, write_workflows
from tests.jobs import dead_letter

SENTINEL = "SENTINEL-7f3a9c"
SCRIPT = '<script>alert("pwned")</script>'


def test_secrets_never_shown_and_errors_escaped(users, client_for, tmp_path):
    write_workflows(tmp_path / "wf", other=OTHER)
    job = dead_letter("tests.step", error=f"upstream said {SCRIPT}", name="charge",
                      api_key=SENTINEL, customer_id=42,
                      nested={"db": {"password": SENTINEL}, "tokens": [{"token": SENTINEL}]})
    run = engine.start_run("other-flow", {"source": "s3", "secret_key": SENTINEL})
    operator = client_for("operator")

    # Operators act: edit the arguments (leaving the masked secret as shown) and retry; a
    # bulk filter on a secret argument path; both write audit entries.
    form = operator.get(reverse("dashboard:job-edit-retry", args=[job.pk]))
    assert form.status_code == 200 and SENTINEL not in form.content.decode()
    shown = json.loads(form.context["form"]["kwargs"])
    shown["customer_id"] = 43
    response = csrf_post(operator, reverse("dashboard:job-edit-retry", args=[job.pk]),
                         {"args": "[]", "kwargs": json.dumps(shown), "reason": "fix customer"})
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.kwargs["api_key"] == SENTINEL  # the secret itself was kept, not the mask
    assert job.kwargs["nested"]["db"]["password"] == SENTINEL and job.kwargs["customer_id"] == 43
    csrf_post(operator, reverse("dashboard:jobs-bulk"), {
        "action": "cancel", "scope": "filter", "confirm": "1", "expected": "1",
        "filter": "state=scheduled&arg=args.customer_id=43"})
    assert AuditEntry.objects.count() == 2
    # A secret cannot be guessed through a filter on it.
    refused = operator.get(reverse("dashboard:jobs") + f"?arg=args.api_key={SENTINEL}")
    assert b"names a secret argument" in refused.content and not refused.context["jobs"]
    for entry in AuditEntry.objects.all():
        assert SENTINEL not in json.dumps(entry.details) + entry.reason + str(entry.object_ids)

    pages = [
        reverse("dashboard:overview"), reverse("dashboard:jobs"),
        reverse("dashboard:job", args=[job.pk]), reverse("dashboard:dead-letters"),
        reverse("dashboard:dead-letters") + "?show=all", reverse("dashboard:failures"),
        reverse("dashboard:runs"), reverse("dashboard:run", args=[run.pk]),
        reverse("dashboard:audit"), reverse("dashboard:workers"),
        reverse("dashboard:workflow", args=["other-flow"]),
    ]
    admin_pages = ["/admin/queues/job/", f"/admin/queues/job/{job.pk}/change/",
                   "/admin/queues/execution/", "/admin/queues/deadletter/",
                   "/admin/scheduler/workflowrun/",
                   f"/admin/scheduler/workflowrun/{run.pk}/change/",
                   "/admin/scheduler/steprun/", "/admin/dashboard/auditentry/"]
    for execution in Execution.objects.filter(job=job):
        admin_pages.append(f"/admin/queues/execution/{execution.pk}/change/")
    for letter in DeadLetter.objects.filter(job=job):
        admin_pages.append(f"/admin/queues/deadletter/{letter.pk}/change/")
    for step in StepRun.objects.filter(run=run):
        admin_pages.append(f"/admin/scheduler/steprun/{step.pk}/change/")
    for entry in AuditEntry.objects.all():
        admin_pages.append(f"/admin/dashboard/auditentry/{entry.pk}/change/")
    users["admin"].is_superuser = True
    users["admin"].save()
    admin = client_for("admin")
    for path in pages + admin_pages:
        response = admin.get(path)
        assert response.status_code == 200, (path, response.status_code)
        html = response.content.decode()
        assert SENTINEL not in html, path
        assert "<script>alert" not in html, path

    detail = admin.get(reverse("dashboard:job", args=[job.pk])).content.decode()
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in detail
    assert "Content-Security-Policy" in admin.get(reverse("dashboard:overview")).headers
    assert Job.objects.filter(kwargs__api_key=SENTINEL).exists()  # still stored, just hidden
