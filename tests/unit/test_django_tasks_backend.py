"""Relay as a backend of Django's tasks framework, without a worker process: what enqueue
stores, how job states read back as TaskResults, and which bad inputs are refused."""

from __future__ import annotations

import inspect
from datetime import timedelta

import django
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from queues import cancel, enqueue, retry
from queues.django_tasks_backend import (
    BaseTaskBackend,
    InvalidTask,
    RelayTaskBackend,
    TaskResultDoesNotExist,
    TaskResultStatus,
)
from queues.exceptions import InvalidPayload
from queues.models import Job, JobState
from queues.registry import registry
from tests.jobs import run
from tests.testapp.framework_tasks import add, broken, echo, flaky

pytestmark = pytest.mark.django_db

BACKEND = "queues.django_tasks_backend.RelayTaskBackend"


def test_the_backend_implements_the_framework_of_this_django_version():
    framework = "django.tasks" if django.VERSION >= (6, 0) else "django_tasks"
    assert BaseTaskBackend.__module__ == f"{framework}.backends.base"
    assert issubclass(RelayTaskBackend, BaseTaskBackend)
    assert type(add).__module__ == f"{framework}.base"
    assert isinstance(add.get_backend(), RelayTaskBackend)


def test_a_django_task_is_a_registered_relay_task_under_its_module_path():
    definition = registry.get("tests.testapp.framework_tasks.add")
    assert definition.func.django_task is add
    assert definition.queue == "default" and definition.takes_context
    # What the dashboard's "trigger a task" form reads: Relay's context, then the arguments
    # (Django's own `context` is supplied by the backend).
    assert list(inspect.signature(definition.func).parameters) == ["job", "a", "b"]
    flaky_handler = registry.get("tests.testapp.framework_tasks.flaky").func
    assert list(inspect.signature(flaky_handler).parameters) == ["job", "key", "succeed_on"]


def test_a_job_started_outside_djangos_api_reads_as_a_task_result():
    # E.g. the dashboard's "trigger a task", a workflow step or a schedule naming the task.
    job = enqueue("tests.testapp.framework_tasks.add", a=1, b=2)
    result = add.get_result(str(job.pk))
    assert (result.status, result.kwargs, result.backend) == (
        TaskResultStatus.READY, {"a": 1, "b": 2}, "default")


def test_enqueue_stores_a_job_with_the_tasks_queue_priority_and_run_after():
    later = timezone.now() + timedelta(hours=1)
    result = add.using(queue_name="reports", priority=7, run_after=later).enqueue(2, b=3)
    job = Job.objects.get(pk=int(result.id))
    assert (job.task, job.queue, job.priority, job.args, job.kwargs) == (
        "tests.testapp.framework_tasks.add", "reports", 7, [2], {"b": 3})
    assert job.run_at == later and job.state == JobState.SCHEDULED
    assert job.max_attempts == 10  # Relay's DEFAULT_MAX_ATTEMPTS
    assert job.meta == {"django_tasks_backend": "default"}
    assert result.status == TaskResultStatus.READY and not result.is_finished
    assert result.enqueued_at == job.created_at
    assert (result.args, result.kwargs, result.backend) == ([2], {"b": 3}, "default")
    assert (result.started_at, result.finished_at, result.errors, result.worker_ids) == (
        None, None, [], [])
    with pytest.raises(ValueError, match="not finished"):
        _ = result.return_value


def test_arguments_named_like_enqueue_options_stay_arguments():
    result = echo.enqueue("q", priority=3, meta={"x": 1})
    job = Job.objects.get(pk=int(result.id))
    assert (job.queue, job.priority, job.args, job.kwargs) == (
        "default", 0, ["q"], {"priority": 3, "meta": {"x": 1}})


def test_backend_options_set_the_retry_policy():
    options = {"MAX_ATTEMPTS": 3, "BACKOFF": {"base": 30, "jitter": 0}, "TIMEOUT": 5,
               "ACK_TIMEOUT": 60}
    with override_settings(TASKS={"default": {"BACKEND": BACKEND, "QUEUES": [],
                                              "OPTIONS": options}}):
        result = add.enqueue(1, 1)
    job = Job.objects.get(pk=int(result.id))
    assert (job.max_attempts, job.timeout, job.ack_timeout) == (3, 5, 60)
    assert job.backoff["base"] == 30 and job.backoff["jitter"] == 0


def test_enqueue_in_a_rolled_back_transaction_leaves_nothing():
    with pytest.raises(RuntimeError), transaction.atomic():
        result = add.enqueue(1, 2)
        assert Job.objects.filter(pk=int(result.id)).exists()
        raise RuntimeError("the caller's own write failed")
    assert not Job.objects.filter(pk=int(result.id)).exists()
    with pytest.raises(TaskResultDoesNotExist):
        add.get_result(result.id)


def test_a_failed_attempt_reads_ready_with_its_error_then_success_returns_the_value():
    result = flaky.enqueue("k")
    job = run(Job.objects.get(pk=int(result.id)), error="not yet", error_type="RuntimeError")
    assert job.state == JobState.FAILED
    result.refresh()
    assert result.status == TaskResultStatus.READY and result.finished_at is None
    assert [e.exception_class for e in result.errors] == [RuntimeError]
    assert "RuntimeError: not yet" in result.errors[0].traceback
    assert result.attempts == 1 and result.worker_ids == ["test-worker"]

    retry(job)  # due now instead of after the backoff
    run(job, output={"key": "k"})
    fetched = flaky.get_result(result.id)
    assert fetched.status == TaskResultStatus.SUCCESSFUL and fetched.is_finished
    assert fetched.return_value == {"key": "k"}
    assert fetched.attempts == 2 and len(fetched.errors) == 1
    assert fetched.started_at < fetched.last_attempted_at <= fetched.finished_at


def test_dead_lettered_and_cancelled_jobs_read_failed():
    dead = broken.enqueue("bad input")
    run(Job.objects.get(pk=int(dead.id)), error="bad input", error_type="ValueError",
        retryable=False)
    dead.refresh()
    assert dead.status == TaskResultStatus.FAILED and dead.finished_at is not None
    assert dead.errors[0].exception_class is ValueError
    with pytest.raises(ValueError, match="failed"):
        _ = dead.return_value

    waiting = add.enqueue(1, 2)
    cancel(int(waiting.id))
    waiting.refresh()
    assert waiting.status == TaskResultStatus.FAILED and waiting.errors == []


def test_get_result_refuses_unknown_ids_and_relay_native_jobs():
    for bad in ("nope", "", "0", "-1", str(2**70), "999999999"):
        with pytest.raises(TaskResultDoesNotExist):
            add.get_backend().get_result(bad)
    native = enqueue("tests.record", key="x")
    with pytest.raises(TaskResultDoesNotExist, match="not a Django task"):
        add.get_backend().get_result(str(native.pk))


def test_get_result_through_another_task_is_a_mismatch():
    result = add.enqueue(1, 2)
    with pytest.raises(Exception, match="Task does not match") as raised:
        broken.get_result(result.id)
    assert type(raised.value).__name__ == "TaskResultMismatch"


def test_invalid_tasks_and_arguments_are_refused_before_anything_is_written():
    with pytest.raises(InvalidTask, match="not a valid Relay queue name"):
        add.using(queue_name="no spaces allowed")
    with pytest.raises(InvalidTask, match="run_after must be an aware datetime"):
        add.using(run_after=timezone.now().replace(tzinfo=None))
    with pytest.raises((InvalidPayload, TypeError)):
        add.enqueue(object(), 1)
    with override_settings(TASKS={"default": {"BACKEND": BACKEND, "QUEUES": ["only"]}}):
        with pytest.raises(InvalidTask, match="not valid for backend"):
            add.using(queue_name="other").enqueue(1, 2)
    assert not Job.objects.exists()


@pytest.mark.parametrize("options, problem", [
    ({"MAX_ATTEMPT": 3}, "unknown key"),
    ({"MAX_ATTEMPTS": 0}, "MAX_ATTEMPTS"),
    ({"BACKOFF": {"base": 1, "speed": 2}}, "BACKOFF"),
    ({"BACKOFF": {"factor": 0.5}}, "BACKOFF"),
    ({"ACK_TIMEOUT": None}, "ACK_TIMEOUT"),
    ({"TIMEOUT": -1}, "TIMEOUT"),
])
def test_bad_backend_options_are_a_configuration_error(options, problem):
    with pytest.raises(ImproperlyConfigured, match=problem):
        RelayTaskBackend("strict", {"OPTIONS": options})
