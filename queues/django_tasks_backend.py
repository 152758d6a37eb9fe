"""Relay as a backend of Django's tasks framework (`django.tasks` in Django 6, the django-tasks
backport on 5.2): a function decorated with Django's `@task` and enqueued with `.enqueue()`
becomes a Relay job, runs on `relay_worker` with Relay's retries and history, and its
`TaskResult` is read back from the job.

    TASKS = {"default": {"BACKEND": "queues.django_tasks_backend.RelayTaskBackend",
                         "QUEUES": [], "OPTIONS": {"MAX_ATTEMPTS": 5}}}

A Django Task becomes a Relay task when it is created (`Task.__post_init__` calls
`validate_task`): registered under its module path, so a worker that imported the module (an
app's tasks.py is autodiscovered) claims its jobs. The result id is the Relay job id.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from queues.backoff import Backoff
from queues.conf import relay_settings
from queues.exceptions import DoNotRetry, JobCancelled, TaskDefinitionError, WorkerShutdown
from queues.registry import QUEUE_NAME_RE, TASK_NAME_RE, UNSET, registry
from queues.registry import Task as RelayTask
from queues.worker.context import JobContext

try:  # Django 6.0+: the framework is part of Django.
    from django.tasks import TaskContext, TaskResult, TaskResultStatus
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import Task, TaskError
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
except ImportError:  # Django 5.2: the django-tasks backport, same interface.
    from django_tasks import TaskContext, TaskResult, TaskResultStatus
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import Task, TaskError
    from django_tasks.exceptions import InvalidTaskError as InvalidTask
    from django_tasks.exceptions import TaskResultDoesNotExist
    from django_tasks.signals import task_enqueued, task_finished, task_started

logger = logging.getLogger(__name__)

# Job.meta key naming the backend alias a job was enqueued through.
META_KEY = "django_tasks_backend"
# A job waiting for its first or next attempt is READY ("ready to be executed again", in
# Django's words), even after a failed attempt; only a final outcome is FAILED.
STATUS_FOR_STATE = {
    "scheduled": TaskResultStatus.READY,
    "failed": TaskResultStatus.READY,
    "running": TaskResultStatus.RUNNING,
    "success": TaskResultStatus.SUCCESSFUL,
    "dead_letter": TaskResultStatus.FAILED,
    "cancelled": TaskResultStatus.FAILED,
}
OPTION_KEYS = ("MAX_ATTEMPTS", "BACKOFF", "TIMEOUT", "ACK_TIMEOUT")


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayTaskContext(TaskContext):
    """Django's TaskContext plus the Relay attempt, for lease extension, progress and
    cancellation checks (`context.job.extend_lease()`)."""

    job: JobContext


class RelayTaskBackend(BaseTaskBackend):
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict) -> None:
        super().__init__(alias, params)
        self.policy = _policy(alias, self.options)

    def validate_task(self, task: Task) -> None:
        super().validate_task(task)
        if not QUEUE_NAME_RE.match(task.queue_name):
            raise InvalidTask(f"Queue {task.queue_name!r} is not a valid Relay queue name "
                              f"(1-100 letters, digits and _ . : - starting with a letter or "
                              f"digit).")
        if not TASK_NAME_RE.match(task.module_path):
            raise InvalidTask(f"{task.module_path!r} is too long for a Relay task name.")
        # Every Task passes through here when it is created, so this is where it becomes a
        # Relay task that workers claim.
        try:
            _register(task, self.policy)
        except TaskDefinitionError as exc:
            raise InvalidTask(str(exc)) from None

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        """Insert the job through the caller's connection: inside `transaction.atomic()` it
        commits or rolls back with the caller's writes, and no worker sees it before commit
        (Django's ENQUEUE_ON_COMMIT, where it exists, is built in)."""
        from queues.models import Job
        from queues.operations import Call, enqueue_many

        self.validate_task(task)
        # enqueue_many takes arguments as a Call, so a task kwarg named like an enqueue option
        # (queue, priority, meta ...) stays an argument.
        batch = enqueue_many(
            task.module_path, [Call(list(args), dict(kwargs))], queue=task.queue_name,
            priority=task.priority, run_at=task.run_after, meta={META_KEY: self.alias},
            **self.policy,
        )
        job = Job.objects.get(pk=batch.ids[0])
        result = build_result(job, task, self.alias, executions=[])
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult:
        from queues.models import Job

        try:
            pk = int(result_id)
        except (TypeError, ValueError):
            raise TaskResultDoesNotExist(f"{result_id!r} is not a Relay job id") from None
        job = Job.objects.filter(pk=pk).first() if 0 < pk < 2**63 else None
        if job is None:
            raise TaskResultDoesNotExist(f"No job {result_id!r}")
        task = django_task_for(job.task)
        if task is None:
            raise TaskResultDoesNotExist(
                f"Job {pk} runs {job.task!r}, not a Django task known to this process "
                f"(declare Django tasks in an installed app's tasks.py)")
        return build_result(job, task, (job.meta or {}).get(META_KEY, self.alias))


def build_result(job: Any, task: Task, alias: str, executions: list[dict] | None = None
                 ) -> TaskResult:
    """The TaskResult of a job: one row per attempt becomes a worker id, and each attempt
    that did not succeed an error."""
    if executions is None:
        executions = list(
            job.executions.order_by("id").values(
                "started_at", "outcome", "error_type", "error_message", "traceback",
                "worker__name"))
    result = TaskResult(
        task=task,
        id=str(job.pk),
        status=STATUS_FOR_STATE[job.state],
        enqueued_at=job.created_at,
        started_at=executions[0]["started_at"] if executions else None,
        finished_at=job.finished_at,
        last_attempted_at=executions[-1]["started_at"] if executions else None,
        args=job.args,
        kwargs=job.kwargs,
        backend=alias,
        errors=[_error(e) for e in executions if e["outcome"] not in (None, "success")],
        worker_ids=[e["worker__name"] or "unknown" for e in executions],
    )
    if job.state == "success":
        object.__setattr__(result, "_return_value", job.result)
    return result


def django_task_for(name: str) -> Task | None:
    """The Django Task a Relay task name stands for: None for a Relay-native task, or one this
    process never imported (names are looked up in the registry, never imported)."""
    if name not in registry:
        return None
    return getattr(registry.get(name).func, "django_task", None)


def _register(task: Task, policy: dict[str, Any]) -> None:
    name = task.module_path
    if name in registry:
        known = getattr(registry.get(name).func, "django_task", None)
        if known is not None and known.func is task.func:
            return  # `task.using(...)` copies: the same function, already registered
    # The backend's policy also applies to jobs of this task started elsewhere (the
    # dashboard's "trigger a task", a workflow step, a schedule).
    backoff = None
    if "backoff" in policy:
        conf = relay_settings()
        backoff = Backoff(**{
            "base": conf.DEFAULT_BACKOFF_BASE, "factor": conf.DEFAULT_BACKOFF_FACTOR,
            "cap": conf.DEFAULT_BACKOFF_CAP, "jitter": conf.DEFAULT_BACKOFF_JITTER,
            **policy["backoff"]})
    registry.register(RelayTask(
        func=_runner(task), name=name, queue=task.queue_name, priority=task.priority,
        max_attempts=policy.get("max_attempts", UNSET), backoff=backoff,
        timeout=policy.get("timeout", UNSET), ack_timeout=policy.get("ack_timeout", UNSET),
        takes_context=True,
    ))


def _runner(task: Task) -> Callable[..., Any]:
    """The Relay handler for a Django task: it receives Relay's JobContext first."""
    func = task.func

    @functools.wraps(func)
    def run(job: JobContext, *args: Any, **kwargs: Any) -> Any:
        return _run(task, job, args, kwargs)

    # The dashboard reads the task's parameters: Relay's context first, then Django's own
    # (without Django's `context`, which the runner supplies).
    params = list(inspect.signature(func).parameters.values())[1 if task.takes_context else 0:]
    context = inspect.Parameter("job", inspect.Parameter.POSITIONAL_ONLY)
    run.__signature__ = inspect.Signature([context, *params])  # type: ignore[attr-defined]
    run.django_task = task  # type: ignore[attr-defined]
    return run


def _run(task: Task, job: JobContext, args: tuple, kwargs: dict) -> Any:
    from queues.models import Job

    row = Job.objects.get(pk=job.job_id)
    alias = (row.meta or {}).get(META_KEY, task.backend)
    result = build_result(row, task, alias)
    _send(task_started, result)
    call_args = (RelayTaskContext(task_result=result, job=job), *args) if (
        task.takes_context) else args
    try:
        if inspect.iscoroutinefunction(task.func):
            # Run the coroutine in this (main) thread, where the worker's interrupts land.
            value = asyncio.run(task.func(*call_args, **kwargs))
        else:
            value = task.func(*call_args, **kwargs)
    except BaseException as exc:  # reported, then re-raised for Relay to record
        result.errors.append(_error({"error_type": _class_path(type(exc)),
                                     "traceback": _traceback(exc), "error_message": str(exc)}))
        final = isinstance(exc, DoNotRetry | JobCancelled) or (
            not isinstance(exc, WorkerShutdown)
            and job.max_attempts is not None and job.attempt >= job.max_attempts)
        _finish(result, TaskResultStatus.FAILED if final else TaskResultStatus.READY)
        raise
    try:
        # What the worker stores: Relay's JSON round trip of the return value.
        stored = json.loads(json.dumps(value, cls=DjangoJSONEncoder, allow_nan=False))
    except (TypeError, ValueError):
        _finish(result, TaskResultStatus.FAILED)  # the worker records InvalidPayload
    else:
        object.__setattr__(result, "_return_value", stored)
        _finish(result, TaskResultStatus.SUCCESSFUL)
    return value


def _finish(result: TaskResult, status: str) -> None:
    object.__setattr__(result, "status", status)
    if status != TaskResultStatus.READY:
        object.__setattr__(result, "finished_at", timezone.now())
    _send(task_finished, result)


def _send(signal: Any, result: TaskResult) -> None:
    # A receiver's error is logged, never turned into a failed attempt of a job that ran.
    for receiver, response in signal.send_robust(RelayTaskBackend, task_result=result):
        if isinstance(response, Exception):
            logger.error("task signal receiver %r failed: %r", receiver, response,
                         extra={"job_id": result.id})


def _error(execution: dict) -> TaskError:
    # Relay names builtins bare ("ValueError"); Django wants an importable path.
    path = execution["error_type"] or "queues.exceptions.HandlerCrashed"
    if "." not in path:
        path = f"builtins.{path}"
    return TaskError(exception_class_path=path,
                     traceback=execution["traceback"] or f"{path}: {execution['error_message']}")


def _class_path(exc_type: type[BaseException]) -> str:
    return f"{exc_type.__module__}.{exc_type.__qualname__}"


def _traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def _policy(alias: str, options: dict[str, Any]) -> dict[str, Any]:
    """Backend OPTIONS as Relay enqueue options; a key left out means Relay's default."""
    unknown = sorted(set(options) - set(OPTION_KEYS))
    if unknown:
        raise ImproperlyConfigured(
            f"TASKS[{alias!r}]['OPTIONS']: unknown key(s) {', '.join(unknown)}; "
            f"Relay's backend takes {', '.join(OPTION_KEYS)}")
    policy: dict[str, Any] = {}
    if "MAX_ATTEMPTS" in options:
        value = options["MAX_ATTEMPTS"]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value < 1):
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS']['MAX_ATTEMPTS'] must be an integer >= 1 or "
                f"None (retry forever), not {value!r}")
        policy["max_attempts"] = value
    if "BACKOFF" in options:
        value = options["BACKOFF"]
        try:
            Backoff(**value)
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS']['BACKOFF'] must be a dict of base, factor, cap "
                f"and jitter: {exc}") from None
        policy["backoff"] = dict(value)
    for key in ("TIMEOUT", "ACK_TIMEOUT"):
        if key in options:
            value = options[key]
            if (value is None and key == "TIMEOUT") or (
                    isinstance(value, int | float) and not isinstance(value, bool) and value > 0):
                policy[key.lower()] = value
            else:
                raise ImproperlyConfigured(
                    f"TASKS[{alias!r}]['OPTIONS'][{key!r}] must be a positive number of "
                    f"seconds{' or None' if key == 'TIMEOUT' else ''}, not {value!r}")
    return policy
