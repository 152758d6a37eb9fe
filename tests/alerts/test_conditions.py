"""Failed workflow runs, backlogged queues, queues nobody serves, and a scheduler that stopped
ticking (seen by relay_watchdog): announced once, repeated while they hold, cleared once."""

from __future__ import annotations

import textwrap
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db.models import F
from django.urls import reverse

from queues import enqueue, pause_queue, store
from queues.models import Job, Worker
from scheduler import engine, leader
from scheduler.alerts import detect, outbox
from scheduler.alerts.models import AlertChannel
from scheduler.definitions import sync
from scheduler.models import RunState, SchedulerLease
from tests import jobs

FAILING_FLOW = """
    name: nightly
    steps:
      - id: extract
        task: tests.fail
        input: {message: "token=abc123 refused"}
"""


def hook(receiver, *events: str) -> AlertChannel:
    return AlertChannel.objects.create(name="-".join(events), kind="webhook",
                                       url=receiver.url, events=list(events))


def sent(receiver, event: str) -> list[dict]:
    return [b for b in receiver.accepted if b["event"] == event]


@pytest.fixture
def nightly(db, tmp_path):
    (tmp_path / "nightly.yaml").write_text(textwrap.dedent(FAILING_FLOW))
    sync.apply(tmp_path)


def fail_run(error: str = "token=abc123 refused"):
    run = engine.start_run("nightly")
    step_job = run.steps.get().job
    jobs.run(step_job, error=error, retryable=False)
    engine.sweep()  # the tests' transaction never commits, so apply the outcome here
    run.refresh_from_db()
    assert run.state == RunState.FAILED
    return run


def test_a_failed_run_alerts_once_with_a_link_to_it(nightly, receiver, moved_clock, relay):
    relay(BASE_URL="https://relay.example.com")
    hook(receiver, "run_failed")
    run = fail_run()
    detect.run_checks()
    moved_clock.advance(5)
    detect.run_checks()
    outbox.deliver_due()
    (body,) = sent(receiver, "run_failed")
    assert body["run_id"] == run.pk and body["workflow"] == "nightly"
    assert body["link"] == "https://relay.example.com" + reverse("dashboard:run", args=[run.pk])
    assert "abc123" not in str(body) and "token=••••••" in body["error_message"]

    # A rerun that fails again is a new failure.
    engine.rerun(run)
    run.refresh_from_db()
    jobs.run(run.steps.get().job, error="again", retryable=False)
    engine.sweep()
    moved_clock.advance(61)
    detect.run_checks()
    outbox.deliver_due()
    assert [b["reruns"] for b in sent(receiver, "run_failed")] == [0, 1]


def test_many_failed_runs_of_one_workflow_are_summarised(nightly, receiver, moved_clock):
    hook(receiver, "run_failed")
    runs = [fail_run() for _ in range(6)]
    detect.run_checks()
    moved_clock.advance(61)
    detect.run_checks()
    outbox.deliver_due()
    first, summary = sent(receiver, "run_failed")
    assert first["run_id"] == runs[0].pk
    assert summary["summary"] is True and summary["count"] == 5
    assert summary["link"] == reverse("dashboard:runs") + "?workflow=nightly&state=failed"


def age_jobs(queue: str, seconds: float) -> None:
    Job.objects.filter(queue=queue).update(run_at=F("run_at") - timedelta(seconds=seconds))


def test_a_backlogged_queue_alerts_repeats_and_clears(db, receiver, moved_clock, relay):
    relay(ALERT_QUEUE_AGE=300, ALERT_QUEUE_AGE_BY_QUEUE={"bulk": None, "reports": 3600},
          ALERT_REPEAT=1800, ALERT_NO_WORKER_AFTER=None, ALERT_CHECK_INTERVAL=30)
    hook(receiver, "queue_backlog")
    for queue in ("default", "bulk", "reports"):
        enqueue("tests.record", queue=queue)
        enqueue("tests.record", queue=queue)
    age_jobs("default", 0)
    moved_clock.advance(299)
    detect.queues()
    assert sent(receiver, "queue_backlog") == []
    moved_clock.advance(31)
    detect.queues()
    moved_clock.advance(10)
    assert detect.queues() == 0  # checked 10 s ago: not yet
    moved_clock.advance(30)
    detect.queues()  # still backlogged: no repeat before ALERT_REPEAT
    outbox.deliver_due()
    (first,) = sent(receiver, "queue_backlog")
    assert first["queue"] == "default" and first["status"] == "firing"
    assert first["waiting"] == 2 and first["oldest_age"] >= 330 and first["threshold"] == 300

    moved_clock.advance(1800)
    detect.queues()
    outbox.deliver_due()
    assert [b["status"] for b in sent(receiver, "queue_backlog")] == ["firing", "firing"]

    # The backlog is worked off: one "cleared" notice.
    worker = jobs.worker(queues=["default"])
    for job in Job.objects.filter(queue="default"):
        jobs.run(job, by=worker)
    moved_clock.advance(30)
    detect.queues()
    moved_clock.advance(30)
    detect.queues()
    outbox.deliver_due()
    statuses = [(b["queue"], b["status"]) for b in sent(receiver, "queue_backlog")]
    assert statuses == [("default", "firing"), ("default", "firing"), ("default", "resolved")]


def test_a_paused_queue_raises_no_backlog_alert(db, receiver, moved_clock, relay):
    relay(ALERT_QUEUE_AGE=60, ALERT_NO_WORKER_AFTER=60)
    hook(receiver, "queue_backlog", "no_worker")
    enqueue("tests.record", queue="held")
    pause_queue("held", by="ops", reason="maintenance")
    moved_clock.advance(3600)
    detect.queues()
    outbox.deliver_due()
    assert receiver.requests == []


def test_a_queue_with_due_jobs_and_no_live_worker_alerts_and_clears(db, receiver,
                                                                    moved_clock, relay):
    relay(ALERT_NO_WORKER_AFTER=60, ALERT_QUEUE_AGE=None)
    hook(receiver, "no_worker")
    enqueue("tests.record", queue="emails")
    busy = jobs.worker("other", queues=["reports"])
    moved_clock.advance(59)
    detect.queues(force=True)
    moved_clock.advance(2)
    detect.queues(force=True)
    outbox.deliver_due()
    (body,) = sent(receiver, "no_worker")
    assert body["queue"] == "emails" and body["status"] == "firing" and body["waiting"] == 1
    assert busy.queues == ["reports"]

    # A worker that stopped heartbeating does not count as serving; a live one does.
    stale = jobs.worker("stale", queues=["emails"])
    Worker.objects.filter(pk=stale.pk).update(
        last_heartbeat_at=moved_clock.now() - timedelta(seconds=600))
    moved_clock.advance(31)
    detect.queues(force=True)
    assert len(sent(receiver, "no_worker")) == 1
    store.heartbeat(stale.pk)
    Worker.objects.filter(pk=stale.pk).update(last_heartbeat_at=moved_clock.now())
    moved_clock.advance(1)
    detect.queues(force=True)
    outbox.deliver_due()
    assert [b["status"] for b in sent(receiver, "no_worker")] == ["firing", "resolved"]


def test_many_troubled_queues_share_one_summary_beyond_the_budget(db, receiver, moved_clock,
                                                                 relay):
    relay(ALERT_NO_WORKER_AFTER=60, ALERT_QUEUE_AGE=None, ALERT_MAX_PER_WINDOW=3)
    hook(receiver, "no_worker")
    for n in range(8):
        enqueue("tests.record", queue=f"q{n}")
    moved_clock.advance(61)
    detect.queues(force=True)
    moved_clock.advance(30)
    detect.queues(force=True)  # the same 5 over budget are not counted twice
    moved_clock.advance(31)
    detect.queues(force=True)  # new window: the overflow summary, then 3 more queues
    outbox.deliver_due()
    bodies = sent(receiver, "no_worker")
    singles = [b["queue"] for b in bodies if not b["summary"]]
    (overflow,) = [b for b in bodies if b["summary"]]
    assert singles == ["q0", "q1", "q2", "q3", "q4", "q5"]
    assert overflow["count"] == 5 and sorted(overflow["subjects"]) == [f"q{n}" for n in
                                                                       range(3, 8)]


def test_the_watchdog_alerts_when_the_scheduler_stops_ticking(db, receiver, moved_clock,
                                                              relay):
    relay(ALERT_SCHEDULER_STALL=120)
    hook(receiver, "scheduler_stalled")
    assert detect.check_scheduler() == 0  # no scheduler ever ran: nothing to compare
    leader.acquire("sched-1", 30)
    moved_clock.advance(60)
    call_command("relay_watchdog", "--once")
    assert receiver.requests == []
    moved_clock.advance(61)
    call_command("relay_watchdog", "--once")  # checks and delivers: no scheduler needed
    (body,) = sent(receiver, "scheduler_stalled")
    assert body["status"] == "firing" and body["holder"] == "sched-1"
    assert body["seconds_since_tick"] >= 120
    moved_clock.advance(30)
    call_command("relay_watchdog", "--once")
    assert len(sent(receiver, "scheduler_stalled")) == 1

    SchedulerLease.objects.update(last_tick_at=moved_clock.now())  # it ticks again
    call_command("relay_watchdog", "--once")
    assert [b["status"] for b in sent(receiver, "scheduler_stalled")] == ["firing", "resolved"]
