"""Enqueue's SQL: one job in one INSERT ... VALUES, many jobs in one INSERT ... SELECT per batch.

The options every job of the batch shares (queue, priority, retry policy, due time) are
validated once and bound once; each job contributes only its arguments, sent as one JSON
document that the database unpacks (`jsonb_array_elements` / `json_each`). No model instance
is built per job, which is what made ORM bulk_create the bottleneck.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.db import connection

from queues.store.clock import (
    POSTGRES_NOW,
    SQLITE_NOW,
    as_datetime,
    postgres_now_plus,
    sqlite_now_plus,
)

_COLUMNS = (
    "task, queue, priority, args, kwargs, tags, meta, state, run_at, attempts, max_attempts, "
    "backoff, timeout, ack_timeout, lease_token, last_error_type, last_error_message"
)

POSTGRES_INSERT = f"""
INSERT INTO queues_job ({_COLUMNS})
SELECT %(task)s, %(queue)s, %(priority)s, r.v -> 'a', r.v -> 'k', %(tags)s::jsonb,
       %(meta)s::jsonb,
       'scheduled', {{run_at}}, 0, %(max_attempts)s, %(backoff)s::jsonb, %(timeout)s,
       %(ack_timeout)s, 0, '', ''
FROM jsonb_array_elements(%(rows)s::jsonb) WITH ORDINALITY AS r(v, n)
ORDER BY r.n
RETURNING id
"""

SQLITE_INSERT = f"""
INSERT INTO queues_job ({_COLUMNS})
SELECT %(task)s, %(queue)s, %(priority)s, json_extract(r.value, '$.a'),
       json_extract(r.value, '$.k'), %(tags)s, %(meta)s, 'scheduled', {{run_at}}, 0,
       %(max_attempts)s, %(backoff)s, %(timeout)s, %(ack_timeout)s, 0, '', ''
FROM json_each(%(rows)s) AS r
ORDER BY r.key
RETURNING id
"""


POSTGRES_INSERT_ONE = f"""
INSERT INTO queues_job ({_COLUMNS}, dedup_key)
VALUES (%(task)s, %(queue)s, %(priority)s, %(args)s::jsonb, %(kwargs)s::jsonb, %(tags)s::jsonb,
        %(meta)s::jsonb, 'scheduled', {{run_at}}, 0, %(max_attempts)s, %(backoff)s::jsonb,
        %(timeout)s, %(ack_timeout)s, 0, '', '', %(dedup_key)s)
RETURNING id, run_at, created_at
"""

SQLITE_INSERT_ONE = f"""
INSERT INTO queues_job ({_COLUMNS}, dedup_key)
VALUES (%(task)s, %(queue)s, %(priority)s, %(args)s, %(kwargs)s, %(tags)s, %(meta)s,
        'scheduled', {{run_at}}, 0, %(max_attempts)s, %(backoff)s, %(timeout)s, %(ack_timeout)s,
        0, '', '', %(dedup_key)s)
RETURNING id, run_at, created_at
"""


def insert_job(job: Any, *, delay: float | None = None) -> Any:
    """Insert one unsaved job (built by `operations._build`) and fill in its id and the
    database's run_at and created_at. The same row `job.save()` would write, in one statement
    Django's SQL compiler need not build: it is the single-enqueue hot path."""
    params = _options(job)
    params.update(args=json.dumps(job.args), kwargs=json.dumps(job.kwargs),
                  dedup_key=job.dedup_key)
    postgres = connection.vendor == "postgresql"
    sql = (POSTGRES_INSERT_ONE if postgres else SQLITE_INSERT_ONE).replace(
        "{run_at}", _due_sql(job, delay, params, postgres))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        job.pk, run_at, created_at = cursor.fetchone()
    job._state.adding = False
    job._state.db = connection.alias
    job.run_at, job.created_at = as_datetime(run_at), as_datetime(created_at)
    return job


def _options(template: Any) -> dict[str, Any]:
    return {
        "task": template.task,
        "queue": template.queue,
        "priority": template.priority,
        "tags": json.dumps(template.tags),
        "meta": json.dumps(template.meta),
        "max_attempts": template.max_attempts,
        "backoff": json.dumps(template.backoff),
        "timeout": template.timeout,
        "ack_timeout": template.ack_timeout,
    }


def _due_sql(template: Any, delay: float | None, params: dict[str, Any], postgres: bool) -> str:
    """The run_at expression: an exact time, the database's now + delay, or its now."""
    run_at = template.__dict__.get("run_at")
    if isinstance(run_at, datetime):
        params["run_at"] = run_at
        return "%(run_at)s"
    if delay:
        params["delay"] = float(delay)
        return postgres_now_plus("%(delay)s") if postgres else sqlite_now_plus("%(delay)s")
    return POSTGRES_NOW if postgres else SQLITE_NOW


def insert_jobs(template: Any, calls: list[tuple[list, dict]], *, delay: float | None = None,
                batch_size: int = 5000) -> list[int]:
    """Insert one job per (args, kwargs) with the template job's options; returns the ids in
    order. Call inside a transaction to make the whole set atomic."""
    params = _options(template)
    postgres = connection.vendor == "postgresql"
    sql = (POSTGRES_INSERT if postgres else SQLITE_INSERT).replace(
        "{run_at}", _due_sql(template, delay, params, postgres))
    ids: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(calls), batch_size):
            batch = calls[start:start + batch_size]
            params["rows"] = json.dumps([{"a": a, "k": k} for a, k in batch])
            cursor.execute(sql, params)
            # Ids come from the sequence in insertion order; RETURNING's order is not promised.
            ids.extend(sorted(row[0] for row in cursor.fetchall()))
    return ids
