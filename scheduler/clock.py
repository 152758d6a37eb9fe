"""The scheduler's "now": the database's clock, as the queue engine uses.

Schedulers on several machines whose clocks drift still agree on when a schedule is due,
because they all ask the database. Due times themselves are computed in Python (cron needs a
calendar and a time zone). Tests replace `now` to simulate hours in seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import connection


def now() -> datetime:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT statement_timestamp()")
            value = cursor.fetchone()[0]
            return value.astimezone(UTC)
        cursor.execute("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")
        text = cursor.fetchone()[0]
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
