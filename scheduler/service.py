"""`relay_scheduler`'s loop: lead (or wait), fire due schedules, advance runs, redeliver.

One tick: renew or take the leader lease; if leading, fire due schedules, start queued
firings, sweep runs whose outcomes were not passed on, redeliver expired job leases and look
for alerts to raise. A sender thread delivers the alerts, so a slow receiver never holds up a
tick. A database outage is logged and retried with backoff; SIGTERM/SIGINT finish the tick and
exit, handing the lease over at once.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, InterfaceError, connections

from queues.conf import relay_settings
from scheduler import engine, firing, leader
from scheduler.alerts import detect, outbox
from scheduler.alerts.sender import Sender

logger = logging.getLogger("scheduler")


@dataclass
class TickReport:
    leader: bool
    fired: int = 0
    missed: int = 0
    skipped: int = 0
    queued: int = 0
    advanced: int = 0
    redelivered: int = 0
    alerts: int = 0  # deliveries written


class Scheduler:
    def __init__(self, *, interval: float, lease: float, name: str | None = None) -> None:
        self.interval = interval
        self.lease = lease
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.leading = False
        self._stop = threading.Event()
        self._sender: Sender | None = None

    def tick(self) -> TickReport:
        leading = leader.acquire(self.name, self.lease)
        if leading != self.leading:
            logger.warning("%s %s the scheduler lease", self.name,
                           "took" if leading else "lost", extra={"leader": leading})
            self.leading = leading
        report = TickReport(leader=leading)
        if not leading:
            return report
        fired = firing.fire_due(recorded_by=self.name)
        report.fired, report.missed = fired.fired, fired.missed
        report.skipped, report.queued = fired.skipped, fired.queued
        report.fired += firing.release_queued()
        report.advanced = engine.sweep()
        from queues import redeliver_expired

        report.redelivered = redeliver_expired()
        report.alerts = detect.run_checks()
        if report.alerts and self._sender is not None:
            self._sender.wake()
        if report.fired or report.missed or report.skipped or report.queued:
            logger.info("fired %d, missed %d, skipped %d, queued %d", report.fired,
                        report.missed, report.skipped, report.queued,
                        extra={"fired": report.fired, "missed": report.missed})
        return report

    def run(self, *, once: bool = False) -> int:
        self._install_signals()
        logger.info("scheduler %s started (tick %.1fs, lease %.1fs)", self.name, self.interval,
                    self.lease)
        failures = 0
        if not once:
            self._sender = Sender()
            self._sender.start()
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    self.tick()
                    failures = 0
                except (DatabaseError, InterfaceError) as exc:
                    failures += 1
                    logger.error("database error in scheduler tick: %s", exc)
                    connections.close_all()
                    if once:
                        return 1
                    self._stop.wait(min(self.interval, 0.5 * 2 ** min(failures, 5)))
                    continue
                if once:
                    self._send_once()
                    break
                self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
        finally:
            if self._sender is not None:
                self._sender.stop(timeout=relay_settings().ALERT_HTTP_TIMEOUT + 1)
            if self.leading:
                try:
                    leader.release(self.name)
                except (DatabaseError, InterfaceError):
                    pass
            logger.info("scheduler %s stopped", self.name)
        return 0

    def stop(self) -> None:
        self._stop.set()

    def _send_once(self) -> None:
        """`--once` has no sender thread: deliver what is due before exiting."""
        try:
            outbox.deliver_due(budget=self.interval)
        except Exception:  # the tick itself succeeded
            logger.exception("could not deliver alerts", extra={"action": "alert_sender"})

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum: int, frame: Any) -> None:
            self.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
