"""Child processes started by management commands (web server, workers)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


def terminate(processes: list[subprocess.Popen], timeout: float) -> None:
    """SIGTERM each process once (a worker drains), then SIGKILL the process group of any
    still running after `timeout` seconds. Processes must run in their own session."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
