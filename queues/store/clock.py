"""The database's clock, the only clock Relay compares due times and leases against.

Workers run on machines whose clocks drift; the database is the one place they share. Every
"now" and "now + n seconds" in a job-mutating statement is computed by the database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db.models import DateTimeField, F, Func, Value
from django.db.models.expressions import Expression

# Raw SQL fragments, in the `%%`-escaped form Django's cursors expect when params are given.
SQLITE_NOW = "strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now')"
POSTGRES_NOW = "statement_timestamp()"


def sqlite_now_plus(seconds_sql: str) -> str:
    return f"strftime('%%Y-%%m-%%d %%H:%%M:%%f', julianday('now') + ({seconds_sql}) / 86400.0)"


def postgres_now_plus(seconds_sql: str) -> str:
    return f"(statement_timestamp() + make_interval(secs => ({seconds_sql})::float8))"


class NowPlus(Func):
    """The database's current time plus `seconds` (a number or an expression such as F(...))."""

    output_field = DateTimeField()

    def __init__(self, seconds: float | Expression | F) -> None:
        if not hasattr(seconds, "resolve_expression"):
            seconds = Value(float(seconds))
        super().__init__(seconds)

    def as_sql(self, compiler, connection, **extra_context):  # pragma: no cover - per vendor
        raise NotImplementedError(f"NowPlus does not support {connection.vendor}")

    def as_postgresql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        return postgres_now_plus(sql), params

    def as_sqlite(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        return sqlite_now_plus(sql), params


def as_datetime(value: Any) -> datetime:
    """A timestamp read with raw SQL: the database's are UTC; SQLite returns naive values or
    text."""
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(str(value))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
