"""Functions declared with Django's `@task`, enqueued through Django's API, run on a real
`relay_worker`: retried with Relay's backoff, recorded attempt by attempt, shown in the
dashboard, and their results read back through Django's API."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client, override_settings

from dashboard.roles import VIEWER, sync_roles
from queues import retry
from queues.django_tasks_backend import TaskResultStatus
from queues.models import DeadLetter, Execution, Job, JobState, Outcome, Worker
from tests.conftest import wait_for
from tests.testapp.framework_tasks import add, broken, double, flaky
from tests.testapp.models import Ledger

pytestmark = pytest.mark.slow


def finished(result) -> bool:
    result.refresh()
    return result.is_finished


def test_django_tasks_run_on_a_relay_worker_and_results_read_back(start_worker):
    summed = add.enqueue(2, 3)
    doubled = double.enqueue(21)
    retried = flaky.enqueue("k")  # fails twice; the test settings back off 0.05 s, 0.1 s
    worker = start_worker()
    for result in (summed, doubled, retried):
        wait_for(lambda r=result: finished(r), timeout=30, message=f"task result {result.id}")

    name = Worker.objects.get().name
    assert name.endswith(f":{worker.pid}")
    assert (summed.status, summed.return_value, summed.attempts) == (
        TaskResultStatus.SUCCESSFUL, 5, 1)
    assert summed.worker_ids == [name] and summed.errors == []
    assert summed.enqueued_at <= summed.started_at <= summed.finished_at
    assert double.get_result(doubled.id).return_value == 42

    fetched = flaky.get_result(retried.id)
    assert fetched.status == TaskResultStatus.SUCCESSFUL
    assert fetched.return_value == {"key": "k", "attempt": 3, "relay_attempt": 3}
    assert fetched.attempts == 3 and fetched.worker_ids == [name] * 3
    assert [e.exception_class for e in fetched.errors] == [RuntimeError, RuntimeError]
    assert "attempt 1: not yet" in fetched.errors[0].traceback
    assert "attempt 2: not yet" in fetched.errors[1].traceback
    job_id = int(retried.id)
    assert list(Execution.objects.filter(job_id=job_id).order_by("id").values_list(
        "attempt", "outcome")) == [(1, Outcome.ERROR), (2, Outcome.ERROR), (3, Outcome.SUCCESS)]
    # What the handler itself saw through Django's TaskContext, attempt by attempt.
    assert list(Ledger.objects.filter(job_id=job_id).order_by("id").values_list(
        "attempt", "event")) == [(1, "RUNNING"), (2, "RUNNING"), (3, "RUNNING")]
    # Django's task signals fire in the worker (the framework logs them).
    assert f"Task id={summed.id} path={add.module_path} state=SUCCESSFUL" in worker.log()

    sync_roles()
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.groups.add(Group.objects.get(name=VIEWER))
    client = Client()
    client.force_login(viewer)
    page = client.get(f"/dashboard/jobs/{job_id}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "tests.testapp.framework_tasks.flaky" in html
    assert "attempt 1: not yet" in html and "relay_attempt" in html


def test_a_django_task_that_keeps_failing_waits_ready_then_ends_failed(start_worker):
    policy = {"MAX_ATTEMPTS": 2, "BACKOFF": {"base": 30, "jitter": 0}}
    with override_settings(TASKS={"default": {
        "BACKEND": "queues.django_tasks_backend.RelayTaskBackend", "QUEUES": [],
        "OPTIONS": policy,
    }}):
        result = broken.enqueue("bad input")
    job_id = int(result.id)
    start_worker()
    wait_for(lambda: Job.objects.get(pk=job_id).state == JobState.FAILED, timeout=30,
             message="the first attempt to fail")
    # Failed once, retry due in 30 s: ready to run again, not finished.
    result.refresh()
    assert result.status == TaskResultStatus.READY and result.finished_at is None
    assert [e.exception_class for e in result.errors] == [ValueError]

    retry(job_id)  # an operator runs it now instead of waiting out the backoff
    wait_for(lambda: finished(result), timeout=30, message="the last attempt to fail")
    assert result.status == TaskResultStatus.FAILED and result.attempts == 2
    assert [e.exception_class for e in result.errors] == [ValueError, ValueError]
    assert "ValueError: bad input" in result.errors[-1].traceback
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value
    letter = DeadLetter.objects.get(job_id=job_id)
    assert (letter.reason, letter.attempts) == (DeadLetter.Reason.EXHAUSTED, 2)
