"""The enqueue contract: what is stored, and which bad inputs are refused (storing nothing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from queues import Call, enqueue, enqueue_many, task
from queues.exceptions import (
    EnqueueError,
    InvalidOption,
    InvalidPayload,
    InvalidQueueName,
    InvalidSchedule,
    TaskDefinitionError,
    UnknownTask,
)
from queues.models import Job, JobState
from queues.registry import registry
from tests.testapp.tasks import record

pytestmark = pytest.mark.django_db


def test_enqueue_by_name_function_or_task_stores_the_call():
    by_name = enqueue("tests.record", "a", queue="reports", priority=5, tags=["t1"])
    by_task = enqueue(record, key="b")
    by_func = record.enqueue("c")
    assert (by_name.task, by_name.args, by_name.queue, by_name.priority, by_name.tags) == (
        "tests.record", ["a"], "reports", 5, ["t1"]
    )
    assert by_task.kwargs == {"key": "b"} and by_func.args == ["c"]
    for job in (by_name, by_task, by_func):
        stored = Job.objects.get(pk=job.pk)
        assert stored.state == JobState.SCHEDULED
        assert stored.attempts == 0 and stored.max_attempts == 10
        assert stored.ack_timeout == 30.0


def test_run_at_defaults_to_the_database_clock_and_delay_adds_to_it():
    now = enqueue("tests.record")
    later = enqueue("tests.record", delay=90)
    exact_time = timezone.now() + timedelta(days=2)
    exact = enqueue("tests.record", run_at=exact_time)
    assert abs((later.run_at - now.run_at).total_seconds() - 90) < 2
    assert Job.objects.get(pk=exact.pk).run_at == exact_time
    assert Job.objects.get(pk=later.pk).run_at == later.run_at


@pytest.mark.parametrize("options", [{}, {"delay": 30}, {"dedup_key": "same-row"},
                                     {"run_at": datetime(2030, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)}])
def test_the_returned_job_is_the_stored_row(options):
    """enqueue() writes with its own INSERT (not Model.save): what it hands back must be
    exactly what a fresh read of the row gives."""
    job = enqueue("tests.record", 1, "two", queue="reports", priority=-3, tags=["a"],
                  meta={"m": 1}, max_attempts=4, timeout=9.5, backoff={"base": 2}, k=[1],
                  **options)
    stored = Job.objects.get(pk=job.pk)
    fields = [f.attname for f in Job._meta.concrete_fields]
    assert {f: getattr(job, f) for f in fields} == {f: getattr(stored, f) for f in fields}
    assert not job._state.adding and job.run_at.tzinfo is not None


def test_dedup_key_returns_the_active_job_and_frees_when_it_finishes():
    first = enqueue("tests.record", "x", dedup_key="k")
    again = enqueue("tests.record", "y", dedup_key="k")
    assert again.pk == first.pk and again.deduplicated and not first.deduplicated
    Job.objects.filter(pk=first.pk).update(state=JobState.SUCCESS, finished_at=timezone.now())
    fresh = enqueue("tests.record", "z", dedup_key="k")
    assert fresh.pk != first.pk and not fresh.deduplicated


def test_enqueue_many_validates_everything_before_writing():
    jobs = enqueue_many("tests.record", [("a",), {"key": "b"}, Call(args=("c",))])
    assert [j.pk is not None for j in jobs] == [True] * 3
    assert sorted(Job.objects.values_list("task", flat=True)) == ["tests.record"] * 3
    with pytest.raises(InvalidPayload):
        enqueue_many("tests.record", [("ok",), (object(),)])
    assert Job.objects.count() == 3


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: enqueue("no.such.task"), UnknownTask),
        (lambda: enqueue(print), UnknownTask),
        (lambda: enqueue("tests.record", object()), InvalidPayload),
        (lambda: enqueue("tests.record", key=Decimal("1.5")), InvalidPayload),
        (lambda: enqueue("tests.record", float("nan")), InvalidPayload),
        (lambda: enqueue("tests.record", queue=""), InvalidQueueName),
        (lambda: enqueue("tests.record", queue="has space"), InvalidQueueName),
        (lambda: enqueue("tests.record", queue="x" * 101), InvalidQueueName),
        (lambda: enqueue("tests.record", delay=-1), InvalidSchedule),
        (lambda: enqueue("tests.record", delay="soon"), InvalidSchedule),
        (lambda: enqueue("tests.record", run_at=datetime(2030, 1, 1)), InvalidSchedule),
        (lambda: enqueue("tests.record", run_at=datetime.now(UTC), delay=1), InvalidSchedule),
        (lambda: enqueue("tests.record", max_attempts=0), InvalidOption),
        (lambda: enqueue("tests.record", max_attempts=-3), InvalidOption),
        (lambda: enqueue("tests.record", priority=101), InvalidOption),
        (lambda: enqueue("tests.record", timeout=0), InvalidOption),
        (lambda: enqueue("tests.record", ack_timeout=-5), InvalidOption),
        (lambda: enqueue("tests.record", dedup_key=""), InvalidOption),
        (lambda: enqueue("tests.record", tags="not-a-list"), InvalidOption),
    ],
)
def test_bad_input_raises_a_specific_error_and_stores_nothing(call, error):
    with pytest.raises(error) as raised:
        call()
    assert isinstance(raised.value, EnqueueError)
    assert isinstance(raised.value, ValueError)  # callers may catch the broad kind
    assert not Job.objects.exists()


def test_task_declarations_are_checked():
    with pytest.raises(TaskDefinitionError):
        task(name="1bad name")(lambda: None)
    with pytest.raises(TaskDefinitionError):
        task(name="tests.ok", max_attempts=0)(lambda: None)
    with pytest.raises(TaskDefinitionError):
        task(name="tests.ok", no_retry_on="ValueError")(lambda: None)
    with pytest.raises(TaskDefinitionError, match="already registered"):
        task(name="tests.record")(lambda: None)
    assert "tests.ok" not in registry


def test_task_options_become_job_defaults_and_callers_override_them():
    @task(name="tests.configured", queue="slow", priority=3, max_attempts=None, timeout=9,
          backoff={"base": 2, "factor": 3, "cap": 30, "jitter": 0})
    def configured():
        return None

    try:
        job = enqueue(configured)
        assert (job.queue, job.priority, job.max_attempts, job.timeout) == ("slow", 3, None, 9)
        assert job.backoff == {"base": 2, "factor": 3, "cap": 30, "jitter": 0}
        override = enqueue(configured, queue="fast", max_attempts=2, priority=-1)
        assert (override.queue, override.max_attempts, override.priority) == ("fast", 2, -1)
    finally:
        registry.unregister("tests.configured")


def test_enqueue_many_stores_each_job_with_the_shared_options_in_order():
    calls = [(f"k{i}",) for i in range(12)] + [{"key": "kw"}]
    jobs = enqueue_many("tests.record", calls, queue="bulk", priority=7, max_attempts=2,
                        timeout=9, tags=["t"], meta={"m": 1}, backoff={"base": 3},
                        delay=60, batch_size=5)  # three INSERT batches
    assert len(jobs) == 13 and jobs.ids == sorted(jobs.ids)
    rows = {row["id"]: row for row in Job.objects.values()}
    for index, job_id in enumerate(jobs.ids):
        row = rows[job_id]
        expected_args, expected_kwargs = ([], {"key": "kw"}) if index == 12 else ([f"k{index}"],
                                                                                  {})
        assert (row["args"], row["kwargs"]) == (expected_args, expected_kwargs)
        assert (row["queue"], row["priority"], row["max_attempts"], row["timeout"]) == (
            "bulk", 7, 2, 9)
        assert (row["tags"], row["meta"], row["backoff"]["base"]) == (["t"], {"m": 1}, 3)
        assert (row["state"], row["attempts"], row["lease_token"]) == ("scheduled", 0, 0)
        waits = (row["run_at"] - row["created_at"]).total_seconds()
        assert 59 <= waits <= 61
    assert jobs[12].kwargs == {"key": "kw"} and jobs[0].pk == jobs.ids[0]
    assert [j.pk for j in jobs[1:3]] == jobs.ids[1:3]


def test_enqueue_many_names_the_bad_item_and_writes_nothing():
    with pytest.raises(InvalidPayload, match="item 2"):
        enqueue_many("tests.record", [("a",), ("b",), (object(),)])
    with pytest.raises(InvalidOption, match="priority"):
        enqueue_many("tests.record", [("a",)], priority=500)
    assert not Job.objects.exists()
