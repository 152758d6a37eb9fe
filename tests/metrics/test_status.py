"""`manage.py relay_status`: what it reports, its rules, and its exit code against a real worker
that starts, runs and is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from queues import enqueue, pause_queue, store
from queues.models import Worker
from scheduler import leader
from scheduler import status as health
from scheduler.clock import now as db_now
from tests.conftest import ROOT, database_env, wait_for
from tests.metrics.conftest import closed_port


def status(*args: str) -> tuple[int, str]:
    """Run the command in this process: (exit code, output)."""
    out = StringIO()
    try:
        call_command("relay_status", *args, stdout=out)
    except SystemExit as exc:
        return int(exc.code), out.getvalue()
    return 0, out.getvalue()


def codes(*args: str) -> list[str]:
    code, out = status("--json", *args)
    report = json.loads(out)
    assert code == (1 if report["problems"] else 0)
    assert report["healthy"] == (code == 0)
    return [p["code"] for p in report["problems"]]


@pytest.fixture
def patient(settings):
    # Workers registered by a test (not processes) stay live however slow the machine is.
    settings.RELAY = {**settings.RELAY, "WORKER_STALE_AFTER": 600}


def register(name: str, queues: list[str]) -> Worker:
    return store.register_worker(name=name, host="h", pid=1, queues=queues,
                                 tasks=["tests.record"], concurrency=1)


def test_no_worker_at_all_is_unhealthy(db, patient):
    assert codes() == [health.NO_WORKER]


def test_a_live_worker_makes_it_healthy_and_is_listed(db, patient):
    register("w1", ["default"])
    enqueue("tests.record", "x")
    code, out = status()
    assert code == 0
    assert "Workers: 1 alive, 0 stale" in out and "w1" in out
    assert "default  waiting 1  running 0  lag" in out
    assert out.rstrip().endswith("OK")


def test_a_draining_worker_is_alive_but_claims_nothing(db, patient):
    worker = register("w1", ["default"])
    store.heartbeat(worker.pk, stopping=True)  # what a worker does after SIGTERM
    enqueue("tests.record", "x")
    assert codes() == [health.NO_WORKER, health.QUEUE_UNSERVED]
    assert health.read().workers_alive == 1


def test_due_jobs_in_a_queue_no_live_worker_serves(db, patient):
    register("w1", ["default"])
    enqueue("tests.record", "orphan", queue="reports")
    enqueue("tests.record", "later", queue="later", delay=3600)  # nothing due: no problem
    assert codes() == [health.QUEUE_UNSERVED]
    _, out = status()
    assert "queue reports has due jobs" in out
    pause_queue("reports", by="test")  # a paused queue is meant to wait
    assert codes() == []


def test_queue_option_judges_only_those_queues(db, patient):
    register("w1", ["default"])
    enqueue("tests.record", "orphan", queue="reports")
    assert codes("--queue", "default") == []
    assert codes("--queue", "reports") == [health.NO_WORKER, health.QUEUE_UNSERVED]


def test_require_scheduler(db, patient):
    register("w1", ["default"])
    assert codes("--require-scheduler") == [health.NO_SCHEDULER]
    assert leader.acquire("sched-a", 30)
    assert codes("--require-scheduler") == []
    report = json.loads(status("--json")[1])
    assert report["scheduler"]["leader"] == "sched-a"
    leader.release("sched-a")
    assert codes("--require-scheduler") == [health.NO_SCHEDULER]


def test_max_lag(db, patient):
    register("w1", ["default"])
    enqueue("tests.record", "late", run_at=db_now() - timedelta(minutes=5))
    assert codes("--max-lag", "600") == []
    assert codes("--max-lag", "60") == [health.QUEUE_LAG]
    report = json.loads(status("--json")[1])
    assert 300 <= report["queues"][0]["lag"] < 360


def run_command(*args: str) -> subprocess.CompletedProcess:
    """relay_status as a probe runs it: its own process, its exit code."""
    return subprocess.run([sys.executable, "manage.py", "relay_status", *args], cwd=ROOT,
                          env=database_env(), capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_exit_code_follows_a_real_worker(start_worker):
    before = run_command()
    assert before.returncode == 1, before.stdout + before.stderr
    assert "no_worker" in before.stdout

    worker = start_worker()
    wait_for(lambda: Worker.objects.filter(pid=worker.pid, state=Worker.State.RUNNING).exists(),
             message="the worker to register")
    alive = run_command("--json")
    assert alive.returncode == 0, alive.stdout + alive.stderr + worker.log()
    report = json.loads(alive.stdout)
    assert report["workers"]["alive"] == 1
    assert report["workers"]["list"][0]["pid"] == worker.pid

    worker.signal_group(signal.SIGKILL)
    worker.wait(timeout=10)
    # Nothing marks it lost (no other worker is left to notice): its heartbeat just ages.
    wait_for(lambda: health.read().workers_stale == 1, timeout=30,
             message="the killed worker's heartbeat to go stale")
    dead = run_command()
    assert dead.returncode == 1, dead.stdout
    assert "0 alive, 1 stale" in dead.stdout and "STALE" in dead.stdout


def test_unreachable_database_exits_2():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings",
           "DATABASE_URL": f"postgres://postgres@127.0.0.1:{closed_port()}/relay"}
    result = subprocess.run([sys.executable, "manage.py", "relay_status"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "the database could not be read" in result.stderr
    assert "Traceback" not in result.stderr
