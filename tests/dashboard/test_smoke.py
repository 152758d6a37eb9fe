"""The plumbing every page relies on: roles exist, queues page, pause/resume with audit."""

from __future__ import annotations

from dashboard.models import AuditEntry
from queues.models import QueuePause
from tests.dashboard.conftest import csrf_post


def test_queue_pause_and_resume_write_one_audit_entry_each(client_for, users):
    operator = client_for("operator")
    response = csrf_post(operator, "/dashboard/queues/reports/pause/",
                         {"reason": "db maintenance"}, REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 302
    assert QueuePause.objects.filter(queue="reports").exists()
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.object_ids, entry.reason, entry.ip) == (
        "operator", "queue.pause", ["reports"], "db maintenance", "10.1.2.3")
    page = operator.get("/dashboard/queues/")
    assert page.status_code == 200 and b"reports" in page.content and b"paused" in page.content
    assert "Content-Security-Policy" in page.headers
    csrf_post(operator, "/dashboard/queues/reports/resume/")
    assert not QueuePause.objects.exists()
    assert list(AuditEntry.objects.values_list("action", flat=True)) == [
        "queue.resume", "queue.pause"]


def test_viewer_cannot_pause_and_nothing_is_recorded(client_for):
    viewer = client_for("viewer")
    assert csrf_post(viewer, "/dashboard/queues/reports/pause/").status_code == 403
    assert not QueuePause.objects.exists() and not AuditEntry.objects.exists()
    assert b"Pause" not in viewer.get("/dashboard/queues/").content


def test_actions_refuse_get_and_missing_csrf(client_for):
    operator = client_for("operator")
    assert operator.get("/dashboard/queues/reports/pause/").status_code == 405
    assert operator.post("/dashboard/queues/reports/pause/").status_code == 403
    assert not QueuePause.objects.exists()


def test_anonymous_is_sent_to_login(client_for):
    response = client_for("anonymous").get("/dashboard/queues/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_audit_log_is_append_only(client_for):
    csrf_post(client_for("operator"), "/dashboard/queues/reports/pause/")
    entry = AuditEntry.objects.get()
    entry.reason = "changed"
    import pytest

    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        AuditEntry.objects.all().delete()
    with pytest.raises(PermissionError):
        AuditEntry.objects.update(reason="x")
