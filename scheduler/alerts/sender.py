"""The scheduler's sender thread: delivers due alerts beside the tick loop, so a slow or dead
receiver delays alerts only, never a tick (schedules, runs, redelivery)."""

from __future__ import annotations

import logging
import threading

from django.db import close_old_connections, connections

from scheduler.alerts import outbox

logger = logging.getLogger("scheduler.alerts")

SEND_INTERVAL = 1.0  # seconds between looks for due deliveries (retries come due in between)


class Sender(threading.Thread):
    def __init__(self, interval: float = SEND_INTERVAL) -> None:
        super().__init__(name="relay-alert-sender", daemon=True)
        self.interval = interval
        self._stop_event = threading.Event()
        self._wake = threading.Event()

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                self._wake.clear()
                try:
                    close_old_connections()
                    outbox.deliver_due()
                except Exception:  # keep sending after a database hiccup
                    logger.exception("alert sender pass failed",
                                     extra={"action": "alert_sender"})
                    connections.close_all()
                self._wake.wait(self.interval)
        finally:
            connections.close_all()  # this thread's own connections

    def wake(self) -> None:
        """New deliveries were written: look now rather than at the next interval."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        self._stop_event.set()
        self._wake.set()
        self.join(timeout)
