"""Channels are managed in the admin (validated, URL hidden from view-only users, "send a
test alert"); deliveries are read-only there, with "retry now"."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from scheduler.alerts import events
from scheduler.alerts.models import AlertChannel, AlertDelivery

SECRET_URL_PART = "T000/B000/XXXXsecretXXXX"


@pytest.fixture
def admin_client(db) -> Client:
    user = User.objects.create_superuser("root", password="pw")
    client = Client()
    client.force_login(user)
    return client


def test_an_admin_adds_a_channel_and_sends_a_test_alert(admin_client, receiver, moved_clock):
    response = admin_client.post("/admin/scheduler/alertchannel/add/", {
        "name": "ops", "kind": "webhook", "url": receiver.url, "recipients": "",
        "events": ["dead_letter", "run_failed"], "enabled": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]
    channel = AlertChannel.objects.get(name="ops")
    assert channel.events == ["dead_letter", "run_failed"]

    response = admin_client.post("/admin/scheduler/alertchannel/", {
        "action": "send_test", "_selected_action": [channel.pk]}, follow=True)
    assert "Test alert to ops: delivered." in response.content.decode()
    (body,) = receiver.accepted
    assert body["event"] == "test" and "Test alert" in body["title"]
    assert AlertDelivery.objects.get().state == AlertDelivery.State.DELIVERED


def test_a_failing_test_alert_says_why(admin_client, receiver, moved_clock):
    channel = AlertChannel.objects.create(name="down", kind="webhook", url=receiver.url)
    receiver.fail(5)
    response = admin_client.post("/admin/scheduler/alertchannel/", {
        "action": "send_test", "_selected_action": [channel.pk]}, follow=True)
    assert "Test alert to down: HTTP 500" in response.content.decode()


@pytest.mark.parametrize(("data", "problem"), [
    ({"kind": "webhook", "url": ""}, "needs an http:// or https:// URL"),
    ({"kind": "email", "recipients": ""}, "at least one recipient"),
    ({"kind": "email", "recipients": "ops@example.com, nope"}, "is not an email address"),
    ({"kind": "webhook", "url": "https://x.example", "name": "from-settings"},
     "declared in RELAY"),
])
def test_the_channel_form_names_the_problem(admin_client, relay, data, problem):
    relay(ALERT_CHANNELS=[{"name": "from-settings", "url": "https://hooks.example/a"}])
    form = {"name": "c", "url": "", "recipients": "", "enabled": "on", **data}
    response = admin_client.post("/admin/scheduler/alertchannel/add/", form)
    assert response.status_code == 200
    assert problem in response.content.decode()
    assert not AlertChannel.objects.exists()


def test_a_view_only_user_never_sees_a_webhook_url(db):
    channel = AlertChannel.objects.create(
        name="slack", kind="slack", url=f"https://hooks.slack.example/services/{SECRET_URL_PART}")
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_alertchannel"))
    client = Client()
    client.force_login(viewer)
    for path in ("/admin/scheduler/alertchannel/",
                 f"/admin/scheduler/alertchannel/{channel.pk}/change/"):
        page = client.get(path)
        assert page.status_code == 200
        assert SECRET_URL_PART not in page.content.decode()
        assert "https://hooks.slack.example/…" in page.content.decode()
    assert client.post(f"/admin/scheduler/alertchannel/{channel.pk}/change/",
                       {"name": "x"}).status_code == 403


def test_deliveries_are_read_only_with_retry_now(admin_client, moved_clock):
    delivery = AlertDelivery.objects.create(
        event="dead_letter", channel="gone", dedup_key="k", title="t", payload={},
        state=AlertDelivery.State.FAILED, attempts=8, next_attempt_at=moved_clock.now(),
        last_error="HTTP 500")
    for path in ("/admin/scheduler/alertdelivery/",
                 f"/admin/scheduler/alertdelivery/{delivery.pk}/change/",
                 "/admin/scheduler/alertstate/", "/admin/scheduler/alertcursor/"):
        assert admin_client.get(path).status_code == 200
    assert admin_client.post(f"/admin/scheduler/alertdelivery/{delivery.pk}/change/",
                             {"state": "delivered"}).status_code == 403
    admin_client.post("/admin/scheduler/alertdelivery/", {
        "action": "retry_now", "_selected_action": [delivery.pk]})
    delivery.refresh_from_db()
    assert delivery.state == AlertDelivery.State.PENDING and delivery.attempts == 0


@pytest.mark.parametrize(("text", "expected"), [
    ("login failed for password=hunter2 user=bob", "login failed for password=•••••• user=bob"),
    ('{"api_key": "abc", "n": 1}', '{"api_key": ••••••, "n": 1}'),
    ("Authorization: Bearer abc.def", "Authorization: ••••••"),
    ("DB_PASSWORD='x y' host=db", "DB_PASSWORD=•••••• host=db"),
    ("connection refused", "connection refused"),
])
def test_secret_looking_values_are_masked_in_alert_text(text, expected):
    assert events.redact(text) == expected
