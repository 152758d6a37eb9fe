"""Delivery: retries with backoff until the receiver takes the alert, giving up after the
configured attempts; Slack-compatible and email channels; channels from settings."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ImproperlyConfigured

from scheduler.alerts import channels, detect, outbox
from scheduler.alerts.checks import alert_channels
from scheduler.alerts.models import AlertChannel, AlertDelivery
from tests import jobs

State = AlertDelivery.State


def test_a_receiver_that_fails_twice_gets_the_alert_on_the_third_try(webhook, receiver,
                                                                     moved_clock, relay):
    relay(ALERT_RETRY_BASE=10, ALERT_RETRY_CAP=600)
    receiver.fail(2)
    job = jobs.dead_letter("tests.fail")
    detect.run_checks()

    assert outbox.deliver_due() == 0
    delivery = AlertDelivery.objects.get()
    assert delivery.state == State.PENDING and delivery.attempts == 1
    assert delivery.last_error.startswith("HTTP 500")
    assert "receiver is down" in delivery.last_error
    assert (delivery.next_attempt_at - moved_clock.now()).total_seconds() == 10

    moved_clock.advance(9)
    assert outbox.deliver_due() == 0  # not due yet: no try
    assert len(receiver.requests) == 1
    moved_clock.advance(1)
    assert outbox.deliver_due() == 0  # second try: 500 again, next in 20 s
    delivery.refresh_from_db()
    assert delivery.attempts == 2
    assert (delivery.next_attempt_at - moved_clock.now()).total_seconds() == 20

    moved_clock.advance(20)
    assert outbox.deliver_due() == 1
    delivery.refresh_from_db()
    assert delivery.state == State.DELIVERED and delivery.attempts == 3
    assert delivery.last_error == ""
    assert [r["status"] for r in receiver.requests] == [500, 500, 200]
    assert [r["json"]["job_id"] for r in receiver.requests] == [job.pk] * 3
    # Every try carried the same delivery id, so a receiver can drop repeats.
    assert len({r["headers"]["X-Relay-Delivery"] for r in receiver.requests}) == 1


def test_a_delivery_is_given_up_after_the_allowed_attempts(webhook, receiver, moved_clock,
                                                           relay):
    relay(ALERT_RETRY_BASE=1, ALERT_MAX_ATTEMPTS=3)
    receiver.fail(100, status=503)
    jobs.dead_letter("tests.fail")
    detect.run_checks()
    for _ in range(10):
        outbox.deliver_due()
        moved_clock.advance(60)
    delivery = AlertDelivery.objects.get()
    assert delivery.state == State.FAILED and delivery.attempts == 3
    assert delivery.last_error.startswith("HTTP 503")
    assert len(receiver.requests) == 3

    receiver.fail(0)
    assert outbox.retry_now(ids=[delivery.pk]) == 1  # the admin's "retry now"
    assert outbox.deliver_due() == 1
    delivery.refresh_from_db()
    assert delivery.state == State.DELIVERED and delivery.attempts == 1


def test_an_unreachable_receiver_is_retried_with_a_clear_error(db, moved_clock):
    AlertChannel.objects.create(name="nowhere", kind="webhook", url="http://127.0.0.1:9/x")
    jobs.dead_letter("tests.fail")
    detect.run_checks()
    assert outbox.deliver_due() == 0
    delivery = AlertDelivery.objects.get()
    assert delivery.state == State.PENDING
    assert delivery.last_error.startswith("could not reach the receiver")


def test_a_slow_receiver_times_out_and_is_retried(webhook, receiver, moved_clock, relay):
    relay(ALERT_HTTP_TIMEOUT=0.3)
    receiver.hang(1.5)
    jobs.dead_letter("tests.fail")
    detect.run_checks()
    assert outbox.deliver_due() == 0
    delivery = AlertDelivery.objects.get()
    assert delivery.state == State.PENDING and delivery.attempts == 1
    assert "timed out" in delivery.last_error


def test_a_claimed_delivery_is_not_tried_by_a_second_sender(webhook, receiver, moved_clock):
    jobs.dead_letter("tests.fail")
    detect.run_checks()
    delivery = AlertDelivery.objects.get()
    # Another sender claimed it (moved its next try ahead) and is still sending.
    AlertDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=moved_clock.now() + timedelta(seconds=15))
    assert outbox.deliver(delivery.pk) is None
    assert receiver.requests == []


def test_slack_channels_get_text_and_blocks(db, receiver, moved_clock, relay):
    relay(BASE_URL="https://relay.example.com/")
    AlertChannel.objects.create(name="slack", kind="slack", url=receiver.url)
    job = jobs.dead_letter("tests.fail", error="a <b> & c")
    detect.run_checks()
    outbox.deliver_due()
    (body,) = receiver.accepted
    assert set(body) == {"text", "blocks"}
    assert f"Job #{job.pk} (tests.fail) was dead-lettered" in body["text"]
    section = body["blocks"][0]["text"]["text"]
    assert "a &lt;b&gt; &amp; c" in section
    footer = body["blocks"][1]["elements"][0]["text"]
    assert f"<https://relay.example.com/dashboard/jobs/{job.pk}/|Open in Relay>" in footer


def test_email_channels_send_through_djangos_mail(db, moved_clock, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    AlertChannel.objects.create(name="mail", kind="email",
                                recipients="ops@example.com, oncall@example.com")
    job = jobs.dead_letter("tests.fail", error="disk full")
    detect.run_checks()
    assert outbox.deliver_due() == 1
    (message,) = mail.outbox
    assert message.to == ["ops@example.com", "oncall@example.com"]
    assert message.subject == f"[Relay] Job #{job.pk} (tests.fail) was dead-lettered"
    assert "disk full" in message.body and f"/dashboard/jobs/{job.pk}/" in message.body


def test_channels_only_get_the_events_they_chose(db, receiver, moved_clock):
    AlertChannel.objects.create(name="runs-only", kind="webhook", url=receiver.url,
                                events=["run_failed"])
    AlertChannel.objects.create(name="off", kind="webhook", url=receiver.url, enabled=False)
    jobs.dead_letter("tests.fail")
    detect.run_checks()
    assert not AlertDelivery.objects.exists()


def test_a_delivery_whose_channel_was_disabled_is_dropped(webhook, receiver, moved_clock):
    jobs.dead_letter("tests.fail")
    detect.run_checks()
    AlertChannel.objects.filter(pk=webhook.pk).update(enabled=False)
    outbox.deliver_due()
    delivery = AlertDelivery.objects.get()
    assert delivery.state == State.DROPPED and receiver.requests == []


def test_channels_declared_in_settings_are_used(db, receiver, moved_clock, relay):
    relay(ALERT_CHANNELS=[{"name": "from-settings", "kind": "webhook", "url": receiver.url,
                           "events": ["dead_letter"]}])
    jobs.dead_letter("tests.fail")
    detect.run_checks()
    outbox.deliver_due()
    assert AlertDelivery.objects.get().channel == "from-settings"
    assert len(receiver.accepted) == 1


@pytest.mark.parametrize(("spec", "problem"), [
    ({"kind": "webhook", "url": "ftp://x"}, "needs a name"),
    ({"name": "a", "kind": "webhook", "url": "ftp://x"}, "http:// or https:// URL"),
    ({"name": "a", "kind": "pager", "url": "https://x"}, "unknown kind 'pager'"),
    ({"name": "a", "kind": "email"}, "at least one recipient"),
    ({"name": "a", "kind": "email", "recipients": ["not-an-address"]}, "not an email"),
    ({"name": "a", "url": "https://x", "events": ["dead_leter"]}, "unknown event(s) 'dead_leter'"),
    ({"name": "a", "url": "https://x", "secret": "s"}, "unknown key(s) secret"),
])
def test_a_bad_channel_in_settings_is_named_by_manage_py_check(relay, spec, problem):
    relay(ALERT_CHANNELS=[spec])
    with pytest.raises(ImproperlyConfigured, match=r"ALERT_CHANNELS'\]\[0\]"):
        channels.from_settings()
    (error,) = alert_channels()
    assert problem in error.msg and error.id == "relay.E101"


def test_good_channels_in_settings_pass_the_check(relay):
    relay(ALERT_CHANNELS=[{"name": "a", "kind": "slack", "url": "https://hooks.example/x"},
                          {"name": "b", "kind": "email", "recipients": "x@example.com"}])
    assert alert_channels() == []
    assert [c.name for c in channels.from_settings()] == ["a", "b"]
