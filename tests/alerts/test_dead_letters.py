"""Dead letters reach a real HTTP receiver: once each, with the job's id, task, error and a
dashboard link; a burst is summarised into a bounded number of alerts."""

from __future__ import annotations

import pytest
from django.urls import reverse

from queues import enqueue
from queues.models import DeadLetter
from scheduler.alerts import detect, outbox
from scheduler.alerts.models import AlertCursor, AlertDelivery, AlertState
from scheduler.service import Scheduler
from tests import jobs

BASE_URL = "https://relay.example.com"


@pytest.fixture
def tick(moved_clock):
    scheduler = Scheduler(interval=10, lease=30, name="alerts-test")

    def run(advance: float = 0) -> None:
        moved_clock.advance(advance)
        report = scheduler.tick()
        assert report.leader
        outbox.deliver_due()

    return run


def test_a_dead_lettered_job_is_delivered_once_with_its_details(webhook, receiver, relay,
                                                                 tick):
    relay(BASE_URL=BASE_URL)
    job = jobs.run(enqueue("tests.fail", max_attempts=1), retryable=False,
                   error="card declined: password=hunter2 for acct 7",
                   error_type="billing.CardDeclined")
    tick()
    tick(5)
    tick(120)  # the window ends with nothing folded: no summary

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    body = request["json"]
    assert body["event"] == "dead_letter" and body["summary"] is False
    assert body["job_id"] == job.pk
    assert body["task"] == "tests.fail" and body["queue"] == "default"
    assert body["error_type"] == "billing.CardDeclined"
    assert body["error_message"] == "card declined: password=•••••• for acct 7"
    assert "hunter2" not in str(request)
    assert body["attempts"] == 1 and body["reason"] == DeadLetter.Reason.NOT_RETRYABLE
    assert body["link"] == BASE_URL + reverse("dashboard:job", args=[job.pk])
    assert f"Job #{job.pk}" in body["title"]
    assert request["headers"]["Content-Type"] == "application/json"
    delivery = AlertDelivery.objects.get()
    assert request["headers"]["X-Relay-Delivery"] == str(delivery.pk)
    assert delivery.state == AlertDelivery.State.DELIVERED and delivery.attempts == 1


def test_nothing_is_sent_twice_when_detection_runs_again(webhook, receiver, moved_clock):
    jobs.dead_letter("tests.fail")
    assert detect.dead_letters() == 1
    assert detect.dead_letters() == 0  # the cursor moved with the outbox row
    outbox.deliver_due()
    outbox.deliver_due()
    assert len(receiver.requests) == 1


def test_a_dead_letter_committed_after_a_later_one_is_still_announced(webhook, receiver,
                                                                      moved_clock, relay):
    relay(ALERT_MAX_PER_WINDOW=50)
    first = jobs.dead_letter("tests.fail", queue="q1")
    # As PostgreSQL can show it: a later id is visible while an earlier one's transaction is
    # still open. Hide the first letter from one pass, then "commit" it with its own id.
    letter = DeadLetter.objects.get(job=first)
    DeadLetter.objects.filter(pk=letter.pk).delete()
    second = jobs.dead_letter("tests.fail", queue="q2")
    assert DeadLetter.objects.get(job=second).pk > letter.pk
    detect.dead_letters()
    assert str(letter.pk) in AlertCursor.objects.get(name="dead_letters").gaps
    letter.save(force_insert=True)
    moved_clock.advance(5)
    detect.dead_letters()
    outbox.deliver_due()
    assert [b["job_id"] for b in receiver.accepted] == [second.pk, first.pk]
    assert str(letter.pk) not in AlertCursor.objects.get(name="dead_letters").gaps


def test_an_id_that_never_commits_is_given_up_after_a_while(webhook, moved_clock):
    first = jobs.dead_letter("tests.fail", queue="q1")
    letter_id = DeadLetter.objects.get(job=first).pk
    DeadLetter.objects.filter(pk=letter_id).delete()  # a rolled-back insert
    jobs.dead_letter("tests.fail", queue="q2")
    detect.dead_letters()
    assert str(letter_id) in AlertCursor.objects.get(name="dead_letters").gaps
    moved_clock.advance(detect.GAP_WAIT + 1)
    jobs.dead_letter("tests.fail", queue="q3")
    detect.dead_letters()
    assert AlertCursor.objects.get(name="dead_letters").gaps == {}


def test_a_hundred_dead_letters_of_one_task_in_a_minute_make_two_alerts(webhook, receiver,
                                                                        tick):
    made = []
    for second in range(0, 60, 6):  # 10 ticks over a minute, 10 dead letters each
        made += [jobs.dead_letter("tests.fail", error=f"boom {len(made) + i}")
                 for i in range(10)]
        tick(6 if second else 0)
    tick(6)  # the window (60 s from the first alert) ends: one summary
    tick(61)  # and nothing more arrived: the next window closes silently

    bodies = receiver.accepted
    assert len(bodies) == 2  # the bound: one alert, one summary
    first, summary = bodies
    assert first["job_id"] == made[0].pk and first["summary"] is False
    assert summary["summary"] is True and summary["count"] == 99
    assert summary["task"] == "tests.fail" and summary["queue"] == "default"
    assert summary["latest"]["job_id"] == made[-1].pk
    assert "99 more" in summary["title"]
    assert summary["link"] == (reverse("dashboard:dead-letters")
                               + "?queue=default&task=tests.fail")
    assert not AlertState.objects.filter(kind="dead_letter").exclude(subject="*").exists()


def test_a_burst_over_many_queues_is_capped_per_window_and_counts_every_letter(
        webhook, receiver, tick, relay):
    relay(ALERT_MAX_PER_WINDOW=10)
    for queue in range(25):
        for _ in range(4):
            jobs.dead_letter("tests.fail", queue=f"q{queue:02d}")
    tick()
    tick(61)
    tick(61)

    bodies = receiver.accepted
    singles = [b for b in bodies if not b["summary"]]
    summaries = [b for b in bodies if b["summary"] and b["subject"] != "*"]
    overflow = [b for b in bodies if b["subject"] == "*"]
    # Window 1: 10 alerts (the budget). Window 2: the overflow of window 1, and 10 summaries.
    assert len(singles) == 10 and len(summaries) == 10 and len(overflow) == 1
    assert len(bodies) <= 2 * (10 + 1)
    assert all(s["count"] == 3 for s in summaries)
    assert overflow[0]["count"] == 60 and len(overflow[0]["subjects"]) == 15
    assert len(singles) + sum(s["count"] for s in summaries) + overflow[0]["count"] == 100


def test_a_steady_storm_makes_one_summary_per_window(webhook, receiver, tick):
    for minute in range(3):
        for _ in range(5):
            jobs.dead_letter("tests.fail")
        tick(0 if minute == 0 else 61)
    tick(61)
    tick(61)
    counts = [(b["summary"], b.get("count")) for b in receiver.accepted]
    assert counts == [(False, None), (True, 4), (True, 5), (True, 5)]


def test_old_dead_letters_are_not_announced_when_alerting_starts(webhook, receiver,
                                                                  moved_clock):
    old = jobs.dead_letter("tests.fail", queue="old")
    moved_clock.advance(detect.START_LOOKBACK + 60)
    recent = jobs.dead_letter("tests.fail", queue="recent")
    DeadLetter.objects.filter(job=recent).update(created_at=moved_clock.now())
    detect.dead_letters()
    outbox.deliver_due()
    assert [b["job_id"] for b in receiver.accepted] == [recent.pk]
    assert old.pk not in [b["job_id"] for b in receiver.accepted]
