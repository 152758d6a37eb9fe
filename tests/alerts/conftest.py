"""A real HTTP receiver for alerts, a channel pointing at it, and a clock the test moves."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from scheduler import clock
from scheduler.alerts.models import AlertChannel


class Receiver:
    """A local HTTP server that records every POST and answers as told: `fail(n)` answers
    the next n requests with 500, `hang(s)` holds each request s seconds first."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.failures_left = 0
        self.fail_status = 500
        self.delay = 0.0
        self.in_flight = 0  # requests being held by hang()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver.delay:
                    with receiver._lock:
                        receiver.in_flight += 1
                    time.sleep(receiver.delay)
                    with receiver._lock:
                        receiver.in_flight -= 1
                with receiver._lock:
                    failing = receiver.failures_left > 0
                    receiver.failures_left -= failing
                    receiver.requests.append({
                        "path": self.path, "headers": dict(self.headers),
                        "json": json.loads(body or b"null"),
                        "status": receiver.fail_status if failing else 200,
                    })
                status = receiver.fail_status if failing else 200
                answer = b"receiver is down" if failing else b"ok"
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def fail(self, times: int, status: int = 500) -> None:
        self.failures_left, self.fail_status = times, status

    def hang(self, seconds: float) -> None:
        self.delay = seconds

    @property
    def accepted(self) -> list[dict[str, Any]]:
        """Bodies of the requests answered 200."""
        return [r["json"] for r in self.requests if r["status"] == 200]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.thread.start()
    yield server
    server.delay = 0
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def webhook(db, receiver) -> AlertChannel:
    return AlertChannel.objects.create(name="ops-hook", kind="webhook", url=receiver.url)


class MovableClock:
    """The scheduler's clock (`scheduler.clock.now`), starting at the database's time and
    moved by the test: `advance(61)`."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> datetime:
        self.current += timedelta(seconds=seconds)
        return self.current


@pytest.fixture
def moved_clock(db, monkeypatch) -> MovableClock:
    movable = MovableClock(clock.now())
    monkeypatch.setattr(clock, "now", movable.now)
    return movable


@pytest.fixture
def relay(settings):
    """relay(KEY=value, ...): override RELAY options on top of the test settings."""
    def override(**values: Any) -> None:
        settings.RELAY = {**settings.RELAY, **values}

    return override
