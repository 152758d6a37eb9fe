"""Fixtures shared by every tier: real worker processes against the test database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.05,
             message: str = "condition") -> object:
    """Poll until predicate() is truthy; fail the test with `message` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class WorkerProcess:
    """A real `relay_worker` in its own process group, as a deployment would run it."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.worker_main", *args],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig: int) -> None:
        """Signal the supervisor only (what `kill PID` does)."""
        self.proc.send_signal(sig)

    def signal_group(self, sig: int) -> None:
        """Signal the supervisor and its handler processes (what the OOM killer or
        `kill -9 -PGID` does to a whole worker)."""
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"worker {self.pid} still running after {timeout}s; log:\n{self.log()}"
            ) from None

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.signal_group(signal.SIGCONT)
            self.signal_group(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._log.close()


def database_env() -> dict[str, str]:
    """Environment that points a subprocess at the test database this test is using."""
    settings = connection.settings_dict
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["PYTHONUNBUFFERED"] = "1"
    if connection.vendor == "postgresql":
        user = settings.get("USER") or "postgres"
        password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
        host = settings.get("HOST") or "127.0.0.1"
        port = settings.get("PORT") or 5432
        env["DATABASE_URL"] = f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"
    else:
        env["DATABASE_URL"] = ""
        env["RELAY_SQLITE_PATH"] = str(settings["NAME"])
    return env


@pytest.fixture
def start_worker(transactional_db, tmp_path) -> Iterator[Callable[..., WorkerProcess]]:
    """start_worker("--burst", "--concurrency", "2", relay={...}, clock_offset=600)"""
    started: list[WorkerProcess] = []

    def start(*args: str, relay: dict | None = None, clock_offset: float = 0,
              queues: str = "default", concurrency: int = 1) -> WorkerProcess:
        env = database_env()
        env["RELAY_TEST_OVERRIDES"] = json.dumps(relay or {})
        env["RELAY_TEST_CLOCK_OFFSET"] = str(clock_offset)
        argv = ["--queues", queues, "--concurrency", str(concurrency), *args]
        worker = WorkerProcess(argv, env, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def vendor() -> str:
    return connection.vendor
