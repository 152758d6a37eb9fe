"""Handlers with the behaviours the worker must survive."""

from __future__ import annotations

import os
import time

from queues import task
from tests.testapp import framework_tasks  # noqa: F401 -- Django @task functions, registered here
from tests.testapp.models import Ledger, Switch


def _record(context, event: str, key: str = "") -> None:
    Ledger.objects.create(
        job_id=context.job_id, attempt=context.attempt, event=event, key=key, pid=os.getpid()
    )


@task(name="tests.record", takes_context=True)
def record(context, key: str = "") -> str:
    _record(context, "run", key)
    return key


@task(name="tests.sleep", takes_context=True)
def sleep(context, seconds: float) -> float:
    _record(context, "start")
    time.sleep(seconds)
    _record(context, "end")
    return seconds


@task(name="tests.sleep_first_attempt", takes_context=True)
def sleep_first_attempt(context, seconds: float) -> int:
    _record(context, "start")
    if context.attempt == 1:
        time.sleep(seconds)
    _record(context, "end")
    return context.attempt


@task(name="tests.long_job", takes_context=True)
def long_job(context, seconds: float, extend_every: float) -> str:
    _record(context, "start")
    deadline = time.monotonic() + seconds
    step = 0
    while time.monotonic() < deadline:
        time.sleep(min(extend_every, max(0.0, deadline - time.monotonic())))
        step += 1
        context.extend_lease(progress={"step": step})
    _record(context, "end")
    return "done"


@task(name="tests.fail", takes_context=True)
def fail(context, message: str = "boom") -> None:
    _record(context, "run")
    raise RuntimeError(message)


@task(name="tests.fail_until_fixed", takes_context=True)
def fail_until_fixed(context) -> str:
    _record(context, "run")
    if not Switch.objects.filter(name="fixed").exists():
        raise RuntimeError("not fixed yet")
    return "fixed"


@task(name="tests.exit_hard", takes_context=True)
def exit_hard(context, code: int = 1) -> None:
    _record(context, "run")
    os._exit(code)


@task(name="tests.ignore_stop", takes_context=True)
def ignore_stop(context, seconds: float) -> None:
    """Swallows the worker's stop request, as badly written code does; must be killed."""
    _record(context, "start")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except BaseException:  # noqa: BLE001 -- deliberately misbehaving
            _record(context, "ignored stop")


@task(name="tests.step", takes_context=True)
def step(context, name: str, sleep: float = 0, fail_until: str = "", **inputs) -> dict:
    """A workflow step: records its start and end (key = step name), echoes its inputs, and
    fails while `fail_until` names a Switch that does not exist yet."""
    _record(context, "start", name)
    if sleep:
        time.sleep(sleep)
    if fail_until and not Switch.objects.filter(name=fail_until).exists():
        _record(context, "failed", name)
        raise RuntimeError(f"{name} failed: {fail_until} not fixed yet")
    _record(context, "end", name)
    return {"name": name, "inputs": inputs}
