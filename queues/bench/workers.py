"""Real `relay_worker` processes for relay_bench and relay_soak, and what they cost in memory.

Each worker runs in its own session, as a deployment would run it; its log is copied to ours
except the one line each planned failure of `relay.bench_maybe_fail` logs (the benchmarks
count those instead).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings

from queues.management.processes import terminate

MIX_TASK = "relay.bench_maybe_fail"
# What a worker logs (WARNING) for each planned failure of MIX_TASK.
MIX_FAILURE_LOG = f"{MIX_TASK} attempt 1: error -> dead_letter"
START_TIMEOUT = 60.0  # seconds for every worker to register as running


def start(queue: str, count: int, concurrency: int) -> list[subprocess.Popen]:
    """Start `count` workers serving `queue`; return once all of them are running."""
    from queues.models import Worker

    env = dict(os.environ, RELAY_LOG_LEVEL="WARNING")
    before = set(Worker.objects.values_list("id", flat=True))
    procs = [
        subprocess.Popen(
            [sys.executable, "manage.py", "relay_worker", "--queues", queue,
             "--concurrency", str(concurrency)],
            cwd=settings.BASE_DIR, env=env, start_new_session=True,
            stderr=subprocess.PIPE, text=True,
        )
        for _ in range(count)
    ]
    for proc in procs:
        threading.Thread(target=_forward_log, args=(proc.stderr,), daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT
    while Worker.objects.exclude(id__in=before).filter(
            state=Worker.State.RUNNING).count() < count:
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            stop(procs)
            raise RuntimeError("workers did not start")
        time.sleep(0.05)
    time.sleep(0.5)  # let their handler processes come up
    return procs


def stop(procs: list[subprocess.Popen]) -> None:
    terminate(procs, timeout=30)


def rss_kb(pid: int) -> int:
    """Resident set size of one process in kB (0 once it is gone), from /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def children(pid: int) -> list[int]:
    """Pids of the direct children of `pid` (a worker's handler processes), from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # "pid (comm) state ppid ...": comm may hold spaces or parentheses, so split after it.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


def _forward_log(stream) -> None:
    for line in stream:
        if MIX_FAILURE_LOG not in line:
            sys.stderr.write(line)
    stream.close()
