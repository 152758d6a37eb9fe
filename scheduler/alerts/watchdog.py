"""`relay_watchdog`: the alert a scheduler cannot raise about itself.

A scheduler that died or hangs cannot report that it stopped ticking, and its sender thread
stopped with it. The watchdog runs elsewhere (another machine, a cron job, a sidecar): each
pass checks the leader's last tick against RELAY["ALERT_SCHEDULER_STALL"] and delivers every
due alert, its own included. Several watchdogs may run; deliveries are claimed one at a time.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from django.db import DatabaseError, InterfaceError, close_old_connections, connections

from scheduler.alerts import detect, outbox

logger = logging.getLogger("scheduler.alerts")

INTERVAL = 30.0  # seconds between passes


class Watchdog:
    def __init__(self, *, interval: float = INTERVAL) -> None:
        self.interval = interval
        self._stop = threading.Event()

    def check(self) -> int:
        """One pass: the scheduler check, then due deliveries. Returns deliveries made."""
        detect.check_scheduler()
        return outbox.deliver_due(budget=self.interval)

    def run(self, *, once: bool = False) -> int:
        self._install_signals()
        logger.info("watchdog started (every %.1fs)", self.interval)
        while True:
            try:
                self.check()
            except (DatabaseError, InterfaceError) as exc:
                logger.error("watchdog: database error: %s", exc,
                             extra={"action": "watchdog"})
                connections.close_all()
                if once:
                    return 1
            except Exception:  # keep watching; the next pass may succeed
                logger.exception("watchdog pass failed", extra={"action": "watchdog"})
                if once:
                    return 1
            if once:
                return 0
            close_old_connections()  # no connection held open across the wait
            if self._stop.wait(self.interval):
                return 0

    def stop(self) -> None:
        self._stop.set()

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum: int, frame: Any) -> None:
            self.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
