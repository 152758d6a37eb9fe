"""The task registry: named handler functions, declared with `@task` in an app's tasks.py.

Tasks are code. A job row names a task; a worker runs it only if that name is registered in
its own process (a rolling deploy never hands new work to old code), and a name is only ever
looked up here, never imported as a dotted path.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

from queues.backoff import Backoff
from queues.exceptions import TaskDefinitionError, UnknownTask

if TYPE_CHECKING:
    from queues.models import Job

TASK_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:\-]{0,199}$")
QUEUE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,99}$")
PRIORITY_RANGE = range(-100, 101)  # higher runs first, as in Django's tasks framework


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


# "Not given, use the default" -- distinct from None, which means "retry forever"/"no limit".
UNSET: Any = _Unset()


@dataclass(eq=False)
class Task:
    """A registered handler and its delivery options.

    Options left UNSET are taken from settings.RELAY when a job is enqueued, so tests and
    deployments can change defaults without touching task code.
    """

    func: Callable[..., Any]
    name: str
    queue: str | None = None
    priority: int = 0
    max_attempts: int | None = UNSET  # None: retry forever
    backoff: Backoff | None = None
    timeout: float | None = UNSET  # seconds one attempt may run; None: only the lease
    ack_timeout: float | None = UNSET  # lease length in seconds
    no_retry_on: tuple[type[BaseException], ...] = field(default_factory=tuple)
    takes_context: bool = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the handler directly, in this process (useful in tests and shells)."""
        return self.func(*args, **kwargs)

    def enqueue(self, *args: Any, **kwargs: Any) -> Job:
        from queues.operations import enqueue

        return enqueue(self, *args, **kwargs)

    def parameters(self) -> inspect.Signature | None:
        """The handler's signature as a caller sees it (without the JobContext the worker
        passes first), or None when Python cannot tell."""
        try:
            signature = inspect.signature(self.func)
        except (TypeError, ValueError):
            return None
        params = list(signature.parameters.values())
        if self.takes_context and params:
            params = params[1:]
        return signature.replace(parameters=params)

    def argument_problem(self, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None
                         ) -> str | None:
        """Why the handler could not be called with these arguments, or None."""
        signature = self.parameters()
        if signature is None:
            return None
        try:
            signature.bind(*args, **(kwargs or {}))
        except TypeError as exc:
            return f"{self.name}{signature} does not accept these arguments: {exc}."
        return None

    def __repr__(self) -> str:
        return f"<Task {self.name}>"


class TaskRegistry:
    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}

    def register(self, task: Task) -> Task:
        existing = self._tasks.get(task.name)
        if existing is not None and _origin(existing.func) != _origin(task.func):
            raise TaskDefinitionError(
                f"Task name {task.name!r} is already registered by "
                f"{_origin(existing.func)}; {_origin(task.func)} cannot reuse it"
            )
        self._tasks[task.name] = task
        return task

    def get(self, name: str) -> Task:
        try:
            return self._tasks[name]
        except KeyError:
            raise UnknownTask(
                f"No task named {name!r} is registered in this process "
                f"(declare it with @task in an installed app's tasks.py)"
            ) from None

    def resolve(self, task: Task | str | Callable[..., Any]) -> Task:
        """The registered Task for a Task object, a task name, or a decorated function."""
        if isinstance(task, Task):
            return self.get(task.name)
        if isinstance(task, str):
            return self.get(task)
        for candidate in self._tasks.values():
            if candidate.func is task:
                return candidate
        raise UnknownTask(f"{task!r} is not a registered task (decorate it with @task)")

    def names(self) -> list[str]:
        return sorted(self._tasks)

    def unregister(self, name: str) -> None:
        self._tasks.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[Task]:
        return iter(list(self._tasks.values()))


registry = TaskRegistry()


def _origin(func: Callable[..., Any]) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


@overload
def task(func: Callable[..., Any], /) -> Task: ...
@overload
def task(
    *,
    name: str | None = ...,
    queue: str | None = ...,
    priority: int = ...,
    max_attempts: int | None = ...,
    backoff: Backoff | dict | None = ...,
    timeout: float | None = ...,
    ack_timeout: float | None = ...,
    no_retry_on: tuple[type[BaseException], ...] | type[BaseException] = ...,
    takes_context: bool = ...,
) -> Callable[[Callable[..., Any]], Task]: ...


def task(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    queue: str | None = None,
    priority: int = 0,
    max_attempts: int | None = UNSET,
    backoff: Backoff | dict | None = None,
    timeout: float | None = UNSET,
    ack_timeout: float | None = UNSET,
    no_retry_on: tuple[type[BaseException], ...] | type[BaseException] = (),
    takes_context: bool = False,
) -> Task | Callable[[Callable[..., Any]], Task]:
    """Register a function as a task: `@task` or `@task(queue="reports", max_attempts=3)`.

    With `takes_context=True` the handler's first argument is a `JobContext` (job id, attempt,
    cancellation check, progress reporting, lease extension).
    """

    def decorate(fn: Callable[..., Any]) -> Task:
        task_name = name or f"{fn.__module__}.{fn.__qualname__}"
        if not TASK_NAME_RE.match(task_name):
            raise TaskDefinitionError(
                f"Invalid task name {task_name!r}: use letters, digits and _ . : - "
                f"(at most 200 characters, not starting with a digit)"
            )
        if queue is not None and not QUEUE_NAME_RE.match(queue):
            raise TaskDefinitionError(f"Task {task_name!r}: invalid queue name {queue!r}")
        if priority not in PRIORITY_RANGE:
            raise TaskDefinitionError(f"Task {task_name!r}: priority must be -100..100")
        if max_attempts is not UNSET and max_attempts is not None and max_attempts < 1:
            raise TaskDefinitionError(f"Task {task_name!r}: max_attempts must be >= 1 or None")
        for label, value in (("timeout", timeout), ("ack_timeout", ack_timeout)):
            if value is not UNSET and value is not None and value <= 0:
                raise TaskDefinitionError(f"Task {task_name!r}: {label} must be > 0")
        errors = no_retry_on if isinstance(no_retry_on, tuple) else (no_retry_on,)
        if not all(isinstance(e, type) and issubclass(e, BaseException) for e in errors):
            raise TaskDefinitionError(
                f"Task {task_name!r}: no_retry_on takes exception classes"
            )
        try:
            policy = Backoff(**backoff) if isinstance(backoff, dict) else backoff
        except (TypeError, ValueError) as exc:
            raise TaskDefinitionError(f"Task {task_name!r}: invalid backoff: {exc}") from exc
        return registry.register(
            Task(
                func=fn,
                name=task_name,
                queue=queue,
                priority=priority,
                max_attempts=max_attempts,
                backoff=policy,
                timeout=timeout,
                ack_timeout=ack_timeout,
                no_retry_on=errors,
                takes_context=takes_context,
            )
        )

    if func is not None:
        return decorate(func)
    return decorate
