"""A handler process: long-lived, forked by the supervisor, runs one job at a time.

The supervisor stops a handler by writing (job id, reason) into shared memory and sending
SIGUSR1; the signal handler raises the matching JobInterrupted subclass inside the handler,
which interrupts even `time.sleep(3600)`. A handler stuck in C code that ignores the exception
is SIGKILLed after KILL_GRACE and this process is replaced.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import close_old_connections, connections

from queues.conf import relay_settings
from queues.exceptions import (
    DoNotRetry,
    JobCancelled,
    JobInterrupted,
    JobTimedOut,
    LeaseExpired,
    WorkerShutdown,
)
from queues.registry import registry
from queues.worker.context import (
    REASON_CANCEL,
    REASON_LEASE,
    REASON_SHUTDOWN,
    REASON_TIMEOUT,
    JobContext,
)

_EXCEPTIONS = {
    REASON_TIMEOUT: JobTimedOut,
    REASON_CANCEL: JobCancelled,
    REASON_LEASE: LeaseExpired,
    REASON_SHUTDOWN: WorkerShutdown,
}
_INHERITED: list[Any] = []


def error_type_name(exc_type: type[BaseException]) -> str:
    module = exc_type.__module__
    return exc_type.__qualname__ if module == "builtins" else f"{module}.{exc_type.__qualname__}"


def child_main(channel: Any, interrupt: Any, parent_pid: int) -> None:
    # SIGUSR1 is only let through while a handler runs; a signal meant for a job that already
    # finished stays pending and is then ignored because the job id no longer matches. Block it
    # before starting any thread so that threads inherit the mask and the signal always lands
    # on the main thread, where it can interrupt the handler.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    _die_with_parent(parent_pid)
    # Signals for the worker go to the supervisor; it decides what happens to handlers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _forget_inherited_connections()
    current: dict[str, int] = {"job": 0}

    def on_interrupt(signum: int, frame: Any) -> None:
        job_id, reason = interrupt[0], interrupt[1]
        if job_id and job_id == current["job"]:
            current["job"] = 0  # raise once; cleanup code in the handler may then run
            raise _EXCEPTIONS.get(reason, JobInterrupted)(f"job {job_id}: stopped by worker")

    signal.signal(signal.SIGUSR1, on_interrupt)
    while True:
        try:
            job = channel.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        report = _run(job, channel, interrupt, current)
        channel.send(("done", job["id"], report))


def _run(job: dict[str, Any], channel: Any, interrupt: Any, current: dict[str, int]) -> dict:
    close_old_connections()
    try:
        definition = registry.get(job["task"])
        args = list(job["args"])
        if definition.takes_context:
            args.insert(0, JobContext(job, channel, interrupt))
        current["job"] = job["id"]
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
            try:
                result = definition.func(*args, **job["kwargs"])
            finally:
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
                current["job"] = 0
        except JobInterrupted as exc:
            return _failure(exc, kind="interrupted", retryable=True)
        except DoNotRetry as exc:
            return _failure(exc, retryable=False)
        except definition.no_retry_on as exc:
            return _failure(exc, retryable=False)
        except BaseException as exc:  # noqa: BLE001 -- any handler failure is reported
            return _failure(exc, retryable=True)
        try:
            output = json.loads(json.dumps(result, cls=DjangoJSONEncoder, allow_nan=False))
        except (TypeError, ValueError) as exc:
            return {
                "kind": "error",
                "error_type": "queues.exceptions.InvalidPayload",
                "error_message": f"handler returned a value that is not JSON: {exc}",
                "traceback": "",
                "retryable": False,
            }
        return {"kind": "success", "output": output}
    except JobInterrupted as exc:  # arrived in the instant around the handler call
        return _failure(exc, kind="interrupted", retryable=True)
    finally:
        close_old_connections()


def _failure(exc: BaseException, *, kind: str = "error", retryable: bool) -> dict:
    conf = relay_settings()
    tb = "".join(traceback.format_exception(exc))
    return {
        "kind": kind,
        "error_type": error_type_name(type(exc)),
        "error_message": str(exc)[: conf.MAX_ERROR_MESSAGE_CHARS],
        "traceback": tb[-conf.MAX_TRACEBACK_CHARS :],
        "retryable": retryable,
    }


def _forget_inherited_connections() -> None:
    # A database connection inherited through fork belongs to the supervisor: drop it without
    # closing (closing would end the supervisor's session) and keep it referenced so garbage
    # collection never finalizes it here. Handlers open their own connections.
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            _INHERITED.append(conn.connection)
            conn.connection = None


def _die_with_parent(parent_pid: int) -> None:
    """A handler must never outlive its supervisor (its job would run unsupervised)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="relay-parent-watch", daemon=True).start()
