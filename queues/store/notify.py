"""Push wakeups on PostgreSQL: LISTEN/NOTIFY on one channel, the payload being a queue name.

Inserted jobs announce themselves: a statement-level trigger (migration 0002) notifies once
per queue per INSERT statement, inside the inserting transaction, so PostgreSQL delivers it
only when the jobs commit (never for a rolled-back enqueue) and the enqueuer pays no extra
round trip. `announce()` does the same for jobs made due by an UPDATE (an operator's retry).
Each worker keeps one extra connection that LISTENs; the supervisor waits on its socket
together with its handler pipes, so an idle worker claims a new job within a round trip
instead of at its next poll. Polling stays as the fallback: a notification missed while the
listener reconnects, or a retry whose backoff ends, costs at most POLL_INTERVAL.
SQLite has no such channel. There an idle worker reads `PRAGMA data_version` every few
milliseconds -- a counter that moves when another connection commits, read without touching a
table or taking a lock -- and when it moved, claims if a read finds a due job of its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from django.db import connection

logger = logging.getLogger("queues.worker")

CHANNEL = "relay_jobs"


def announce(queues: Iterable[str]) -> None:
    """Tell listening workers that jobs of these queues are due (delivered on commit)."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for queue in sorted(set(queues)):
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, queue])


def data_version() -> int:
    """SQLite: changes whenever another connection has committed since the last call."""
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA data_version")
        return cursor.fetchone()[0]


def has_due(queues: list[str], tasks: list[str]) -> bool:
    """A read (no write lock, so SQLite writers are not held up): is a job of ours due?"""
    from queues.models import Job, QueuePause

    paused = QueuePause.objects.filter(queue__in=queues).values_list("queue", flat=True)
    return Job.objects.due().filter(queue__in=queues, task__in=tasks).exclude(
        queue__in=paused).exists()


class Listener:
    """A LISTEN connection for one worker. `fileno()` is waited on with the handler pipes;
    `drain()` says whether a notification for one of `queues` arrived. A broken connection is
    reopened with backoff; meanwhile `fileno()` is None and the worker polls."""

    def __init__(self, queues: Iterable[str], name: str = "") -> None:
        self.queues = set(queues)
        self.name = name
        self.conn: Any = None
        self.retry_at = 0.0
        self.failures = 0
        self.connected_once = False
        self.resumed = False  # reconnected: notifications may have been missed meanwhile

    @staticmethod
    def supported() -> bool:
        return connection.vendor == "postgresql"

    def fileno(self) -> int | None:
        if self.conn is None:
            self._connect()
        return self.conn.fileno() if self.conn is not None else None

    def drain(self) -> bool:
        """Consume pending notifications; True if one names a queue this worker serves."""
        if self.conn is None:
            return False
        relevant = False
        try:
            pgconn = self.conn.pgconn
            pgconn.consume_input()
            while (note := pgconn.notifies()) is not None:
                if note.extra.decode() in self.queues:
                    relevant = True
            if pgconn.status != 0:  # CONNECTION_OK
                raise OSError("listener connection lost")
        except Exception as exc:  # noqa: BLE001 - any failure means: reconnect, poll meanwhile
            self._broken(exc)
            return True  # we may have missed something: look now
        return relevant

    def take_resumed(self) -> bool:
        """True once after a reconnect: the caller should look for due jobs now."""
        resumed, self.resumed = self.resumed, False
        return resumed

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001 - closing a dead connection
                pass
            self.conn = None

    def _connect(self) -> None:
        if time.monotonic() < self.retry_at:
            return
        import psycopg

        try:
            params = connection.get_connection_params()
            params.pop("cursor_factory", None)
            params.pop("context", None)
            # Visible in pg_stat_activity as the worker's listener.
            params["application_name"] = f"relay listener {self.name}"[:63]
            conn = psycopg.connect(**params, autocommit=True)
            conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            self._broken(exc)
            return
        self.conn = conn
        self.failures = 0
        self.resumed = self.connected_once
        self.connected_once = True

    def _broken(self, exc: BaseException) -> None:
        self.close()
        self.failures += 1
        delay = min(10.0, 0.2 * 2 ** min(self.failures, 6))
        self.retry_at = time.monotonic() + delay
        logger.warning("wakeup listener unavailable (%s); polling, retrying in %.1fs", exc, delay)
