"""/metrics after a workload with known counts: every counter and gauge equals the database.

The jobs are run by the test helpers (the queue's own claim/ack/fail functions, as a worker
calls them); `test_worker_processes.py` does the same with real `relay_worker` processes.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count

from dashboard.metrics import rollup
from dashboard.metrics.models import Rollup, Tally
from queues import enqueue, pause_queue, store
from queues.models import WAITING_STATES, DeadLetter, Execution, Job, JobState, Outcome
from scheduler import leader
from scheduler.clock import now as db_now
from tests.jobs import dead_letter, run
from tests.metrics.conftest import scrape


def workload() -> dict[str, int]:
    """4 successes, 2 failed attempts (one job retrying, one later succeeding), 3 dead
    letters in two queues, 2 jobs still waiting, one of them in a paused queue."""
    for i in range(4):
        run(enqueue("tests.record", f"ok-{i}"), output=f"ok-{i}")
    flaky = enqueue("tests.fail_until_fixed", max_attempts=5, backoff={"base": 0})
    run(flaky, error="not fixed yet")
    flaky = run(Job.objects.get(pk=flaky.pk), output="fixed")
    retrying = enqueue("tests.fail", max_attempts=5, backoff={"base": 600})
    run(retrying, error="boom")
    dead_letter("tests.fail", error="first")
    dead_letter("tests.fail", error="second")
    dead_letter("tests.fail", error="third", queue="reports")
    enqueue("tests.record", "later", delay=3600)
    enqueue("tests.record", "held", queue="held")
    pause_queue("held", by="test")
    return {"enqueued": 11, "succeeded": 5, "failed_attempts": 5, "dead_lettered": 3}


def database_counts() -> dict[str, dict]:
    return {
        "enqueued": {(r["task"], r["queue"]): r["n"] for r in
                     Job.objects.values("task", "queue").annotate(n=Count("id")).order_by()},
        "attempts": {(r["job__task"], r["job__queue"], r["outcome"]): r["n"] for r in
                     Execution.objects.filter(outcome__isnull=False)
                     .values("job__task", "job__queue", "outcome").annotate(n=Count("id"))
                     .order_by()},
        "dead_lettered": {(r["job__task"], r["job__queue"], r["reason"]): r["n"] for r in
                          DeadLetter.objects.values("job__task", "job__queue", "reason")
                          .annotate(n=Count("id")).order_by()},
        "waiting": {r["queue"]: r["n"] for r in Job.objects.filter(state__in=WAITING_STATES)
                    .values("queue").annotate(n=Count("id")).order_by()},
        "dead_open": {r["queue"]: r["n"] for r in Job.objects.filter(state=JobState.DEAD_LETTER)
                      .values("queue").annotate(n=Count("id")).order_by()},
    }


def assert_matches_database(samples) -> None:
    db = database_counts()
    assert samples.by("relay_jobs_enqueued_total", "task", "queue") == db["enqueued"]
    assert samples.by("relay_job_attempts_total", "task", "queue", "outcome") == db["attempts"]
    assert samples.by("relay_jobs_dead_lettered_total", "task", "queue", "reason") == \
        db["dead_lettered"]
    depth = samples.by("relay_queue_depth", "queue")
    assert {q: n for (q,), n in depth.items() if n} == db["waiting"]
    dead = samples.by("relay_dead_letters_open", "queue")
    assert {q: n for (q,), n in dead.items() if n} == db["dead_open"]


def test_metrics_parse_and_match_the_database_after_a_workload(db, relay):
    known = workload()
    samples = scrape()

    assert_matches_database(samples)
    # ... and the known numbers of the workload, independently of the queries above.
    assert samples.value("relay_jobs_enqueued_total") == known["enqueued"]
    assert samples.value("relay_job_attempts_total", outcome=Outcome.SUCCESS) == \
        known["succeeded"]
    assert samples.value("relay_job_attempts_total", outcome=Outcome.ERROR) == \
        known["failed_attempts"]
    assert samples.value("relay_jobs_dead_lettered_total") == known["dead_lettered"]
    assert samples.value("relay_jobs_dead_lettered_total", task="tests.fail", queue="reports",
                         reason=DeadLetter.Reason.NOT_RETRYABLE) == 1
    assert samples.value("relay_dead_letters_open", queue="default") == 2
    assert samples.value("relay_queue_depth", queue="default") == 2  # retrying + delayed
    assert samples.value("relay_queue_paused", queue="held") == 1
    assert samples.value("relay_queue_paused", queue="default") == 0


def test_duration_histogram_counts_every_timed_attempt_by_task(db, relay):
    workload()
    samples = scrape()
    executions = Execution.objects.filter(outcome__isnull=False).exclude(outcome=Outcome.LOST)
    for task in ("tests.record", "tests.fail", "tests.fail_until_fixed"):
        mine = [e for e in executions.select_related("job") if e.job.task == task]
        count = samples.value("relay_job_duration_seconds_count", task=task)
        assert count == len(mine)
        assert samples.value("relay_job_duration_seconds_bucket", task=task, le="+Inf") == count
        total = sum(e.duration for e in mine)
        assert abs(samples.value("relay_job_duration_seconds_sum", task=task) - total) < 1e-3
        # Cumulative buckets: never decreasing, and each counts the attempts at or under it.
        previous = 0
        for bound in rollup.BUCKETS:
            n = samples.value("relay_job_duration_seconds_bucket", task=task,
                              le=repr(float(bound)))
            assert n == sum(1 for e in mine if e.duration <= bound)
            assert n >= previous
            previous = n


def test_gauges_describe_workers_scheduler_and_runs(db, relay):
    store.register_worker(name="w1", host="h", pid=1, queues=["default", "reports"],
                          tasks=["tests.record"], concurrency=2)
    enqueue("tests.record", "due")
    assert leader.acquire("sched-a", 30)

    samples = scrape()

    assert samples.value("relay_workers_alive") == 1
    assert samples.value("relay_workers_stale") == 0
    assert samples.value("relay_queue_workers_alive", queue="default") == 1
    assert samples.value("relay_queue_workers_alive", queue="reports") == 1
    assert samples.value("relay_scheduler_has_leader") == 1
    assert samples.value("relay_scheduler_leader", scheduler="sched-a") == 1
    assert 0 <= samples.value("relay_scheduler_last_tick_age_seconds") < 30
    assert samples.value("relay_queue_oldest_waiting_age_seconds", queue="default") >= 0
    assert set(samples.by("relay_workflow_runs", "state")) == {
        ("scheduled",), ("running",), ("success",), ("failed",), ("cancelled",)}

    leader.release("sched-a")
    assert scrape().value("relay_scheduler_has_leader") == 0


def test_oldest_waiting_age_is_how_long_the_longest_due_job_has_been_due(db, relay):
    now = db_now()
    enqueue("tests.record", "old", run_at=now - timedelta(minutes=10))
    enqueue("tests.record", "new", run_at=now - timedelta(minutes=1))
    enqueue("tests.record", "future", run_at=now + timedelta(hours=1))
    age = scrape().value("relay_queue_oldest_waiting_age_seconds", queue="default")
    assert 600 <= age < 660


def test_folded_totals_plus_the_tail_stay_exact_as_work_goes_on(db, relay, settle_now):
    workload()
    before = scrape()
    # Fold everything (twice: the first fold only marks where the jobs' next fold ends).
    assert rollup.fold(db_now(), force=True)
    assert rollup.fold(db_now(), force=True)
    state = Rollup.objects.get()
    assert state.jobs_folded == Job.objects.latest("id").pk
    assert Tally.objects.filter(kind=Tally.Kind.ENQUEUED).exists()
    folded = scrape()
    assert folded.by("relay_jobs_enqueued_total", "task", "queue") == \
        before.by("relay_jobs_enqueued_total", "task", "queue")
    assert folded.by("relay_job_duration_seconds_bucket", "task", "le") == \
        before.by("relay_job_duration_seconds_bucket", "task", "le")

    # More work after the fold is read from the tail, not counted twice nor missed.
    run(enqueue("tests.record", "after"), output="after")
    dead_letter("tests.fail", error="after")
    after = scrape()
    assert_matches_database(after)
    assert after.value("relay_jobs_enqueued_total") == before.value(
        "relay_jobs_enqueued_total") + 2


def test_counters_survive_pruning_the_history(db, relay, settle_now):
    workload()
    before = scrape()
    rollup.fold(db_now(), force=True)
    rollup.fold(db_now(), force=True)

    report = store.prune(older_than=timedelta(0))
    assert report.jobs == 8  # every finished job: 5 succeeded, 3 dead-lettered
    after = scrape()

    assert Execution.objects.filter(outcome=Outcome.SUCCESS).count() == 0
    for name in ("relay_jobs_enqueued_total", "relay_job_attempts_total",
                 "relay_jobs_dead_lettered_total", "relay_job_duration_seconds_count"):
        assert after.value(name) == before.value(name) > 0, name
    # Gauges follow the table: the dead letters are gone.
    assert after.value("relay_dead_letters_open") == 0


def test_a_fold_landing_between_reads_is_neither_doubled_nor_missed(db, relay, settle_now,
                                                                     monkeypatch):
    workload()
    rollup.fold(db_now(), force=True)  # marks where the jobs' next fold ends
    real_state = rollup._state
    calls = []

    def fold_after_reading_the_state():
        state = real_state()
        calls.append(state)
        # The scrape's own fold reads the state first (and finds nothing due); the second
        # read is the reader's: a fold lands right after it, before the tallies are read.
        if len(calls) == 2:
            assert rollup.fold(db_now(), force=True)
        return state

    monkeypatch.setattr(rollup, "_state", fold_after_reading_the_state)
    samples = scrape()
    assert len(calls) > 3  # the reader saw the version move and read again
    assert_matches_database(samples)


def test_a_fold_that_lost_the_race_writes_nothing(db, relay, settle_now, monkeypatch):
    workload()
    stale = rollup._state()
    assert rollup.fold(db_now(), force=True)
    tallies = sorted(Tally.objects.values_list("kind", "task", "queue", "label", "count"))
    monkeypatch.setattr(rollup, "_state", lambda: stale)
    assert not rollup.fold(db_now(), force=True)
    assert sorted(Tally.objects.values_list("kind", "task", "queue", "label", "count")) == \
        tallies


def test_the_admin_shows_the_totals_read_only(db, relay, settle_now, admin_client):
    workload()
    scrape()
    tally = Tally.objects.filter(kind=Tally.Kind.ATTEMPT).first()
    assert tally is not None
    listing = admin_client.get("/admin/relay_metrics/tally/")
    assert listing.status_code == 200 and tally.task.encode() in listing.content
    assert admin_client.get(f"/admin/relay_metrics/tally/{tally.pk}/change/").status_code == 200
    assert admin_client.get("/admin/relay_metrics/tally/add/").status_code == 403
    assert admin_client.post(f"/admin/relay_metrics/tally/{tally.pk}/delete/").status_code == 403
    assert admin_client.get("/admin/relay_metrics/rollup/").status_code == 200
