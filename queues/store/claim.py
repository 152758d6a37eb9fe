"""The claim: move due jobs to `running` under a fresh lease, in one short transaction.

PostgreSQL: one statement locks due rows with FOR UPDATE SKIP LOCKED (so concurrent workers
never wait for or share a job), leases them and opens their Execution rows.
SQLite: one BEGIN IMMEDIATE transaction (SQLite has a single writer) doing UPDATE ... RETURNING
and the Execution inserts. No transaction is held while a handler runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import F

from queues.models import Execution, Job
from queues.store.clock import (
    POSTGRES_NOW,
    SQLITE_NOW,
    as_datetime,
    postgres_now_plus,
    sqlite_now_plus,
)

_RETURNING = (
    "id, task, queue, priority, args, kwargs, attempts, max_attempts, lease_token, "
    "timeout, ack_timeout, created_at, started_at"
)

# Per queue, the partial index job_claim_idx (queue, priority DESC, id) WHERE waiting yields
# due jobs already in claim order: the scan reads only waiting rows, however many finished
# ones the table holds, and never sorts the backlog. Several queues: the same walk per queue
# (LATERAL), then the best `limit` of those few candidates. A paused queue (a QueuePause row,
# a one-row probe of a tiny table) yields nothing.
_PICK_ONE_QUEUE = f"""
    SELECT id FROM queues_job
    WHERE state IN ('scheduled', 'failed')
      AND run_at <= {POSTGRES_NOW}
      AND queue = %(queue)s
      AND task = ANY(%(tasks)s)
      AND NOT EXISTS (SELECT 1 FROM queues_queuepause WHERE queue = %(queue)s)
    ORDER BY priority DESC, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
"""

_PICK_QUEUES = f"""
    SELECT c.id FROM (
        SELECT name FROM unnest(%(queues)s::text[]) AS u(name)
        WHERE NOT EXISTS (SELECT 1 FROM queues_queuepause p WHERE p.queue = u.name)
    ) AS q
    CROSS JOIN LATERAL (
        SELECT id, priority FROM queues_job
        WHERE state IN ('scheduled', 'failed')
          AND run_at <= {POSTGRES_NOW}
          AND queue = q.name
          AND task = ANY(%(tasks)s)
        ORDER BY priority DESC, id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) AS c
    ORDER BY c.priority DESC, c.id
    LIMIT %(limit)s
"""

POSTGRES_CLAIM = f"""
WITH picked AS ({{pick}}), claimed AS (
    UPDATE queues_job AS j
    SET state = 'running',
        attempts = j.attempts + 1,
        lease_token = j.lease_token + 1,
        leased_until = {postgres_now_plus("j.ack_timeout")},
        worker_id = %(worker)s,
        started_at = {POSTGRES_NOW}
    FROM picked
    WHERE j.id = picked.id
    RETURNING j.id, j.task, j.queue, j.priority, j.args, j.kwargs, j.attempts, j.max_attempts,
              j.lease_token, j.timeout, j.ack_timeout, j.created_at, j.started_at
), opened AS (
    INSERT INTO queues_execution
        (job_id, attempt, lease_token, worker_id, started_at,
         error_type, error_message, traceback, late_outcome)
    SELECT id, attempts, lease_token, %(worker)s, started_at, '', '', '', ''
    FROM claimed
)
SELECT {_RETURNING} FROM claimed
"""


def postgres_claim_sql(queues: list[str]) -> str:
    return POSTGRES_CLAIM.replace("{pick}", _PICK_ONE_QUEUE if len(queues) == 1
                                  else _PICK_QUEUES)

SQLITE_CLAIM = f"""
UPDATE queues_job
SET state = 'running',
    attempts = attempts + 1,
    lease_token = lease_token + 1,
    leased_until = {sqlite_now_plus("ack_timeout")},
    worker_id = %(worker)s,
    started_at = {SQLITE_NOW}
WHERE id IN (
    SELECT id FROM queues_job
    WHERE state IN ('scheduled', 'failed')
      AND run_at <= {SQLITE_NOW}
      AND queue IN (SELECT value FROM json_each(%(queues)s))
      AND queue NOT IN (SELECT queue FROM queues_queuepause)
      AND task IN (SELECT value FROM json_each(%(tasks)s))
    ORDER BY priority DESC, id
    LIMIT %(limit)s
)
RETURNING {_RETURNING}
"""

SQLITE_OPEN_EXECUTIONS = """
INSERT INTO queues_execution
    (job_id, attempt, lease_token, worker_id, started_at,
     error_type, error_message, traceback, late_outcome)
SELECT id, attempts, lease_token, worker_id, started_at, '', '', '', ''
FROM queues_job
WHERE id IN (SELECT value FROM json_each(%(ids)s)) AND state = 'running'
"""


@dataclass(frozen=True, slots=True)
class Claimed:
    """One delivery: what a worker needs to run the job and to ack it."""

    id: int
    task: str
    queue: str
    priority: int
    args: list
    kwargs: dict
    attempt: int
    max_attempts: int | None
    lease_token: int
    timeout: float | None
    ack_timeout: float
    created_at: datetime
    started_at: datetime


def claim(*, worker_id: int, queues: list[str], tasks: list[str], limit: int) -> list[Claimed]:
    """Lease up to `limit` due jobs of `queues` whose task is in `tasks`, best first."""
    if limit <= 0 or not queues or not tasks:
        return []
    if connection.vendor == "postgresql":
        rows = _claim_postgres(worker_id, queues, tasks, limit)
    else:
        rows = _claim_sqlite(worker_id, queues, tasks, limit)
    claimed = [_to_claimed(row) for row in rows]
    claimed.sort(key=lambda c: (-c.priority, c.id))
    return claimed


def _claim_postgres(worker_id: int, queues: list[str], tasks: list[str], limit: int) -> list:
    params = {"queues": queues, "queue": queues[0], "tasks": tasks, "limit": limit,
              "worker": worker_id}
    # One statement is its own transaction: no BEGIN/COMMIT round trips around it. (Inside a
    # caller's atomic block it simply joins that transaction.)
    with connection.cursor() as cursor:
        cursor.execute(postgres_claim_sql(queues), params)
        return cursor.fetchall()


def _claim_sqlite(worker_id: int, queues: list[str], tasks: list[str], limit: int) -> list:
    params = {
        "queues": json.dumps(queues),
        "tasks": json.dumps(tasks),
        "limit": limit,
        "worker": worker_id,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(SQLITE_CLAIM, params)
        rows = cursor.fetchall()
        if rows:
            cursor.execute(SQLITE_OPEN_EXECUTIONS, {"ids": json.dumps([r[0] for r in rows])})
    return rows


def _to_claimed(row: tuple[Any, ...]) -> Claimed:
    (id_, task, queue, priority, args, kwargs, attempts, max_attempts, token, timeout,
     ack_timeout, created_at, started_at) = row
    if isinstance(args, str):
        args = json.loads(args)
    if isinstance(kwargs, str):
        kwargs = json.loads(kwargs)
    return Claimed(
        id=id_,
        task=task,
        queue=queue,
        priority=priority,
        args=args,
        kwargs=kwargs,
        attempt=attempts,
        max_attempts=max_attempts,
        lease_token=token,
        timeout=timeout,
        ack_timeout=ack_timeout,
        created_at=as_datetime(created_at),
        started_at=as_datetime(started_at),
    )


def release_unstarted(deliveries: list[tuple[int, int]]) -> int:
    """Hand back claimed jobs whose handler never started (a worker's prefetch buffer on
    shutdown, or held too long behind busy handlers): the claim is undone -- the job is due
    again, the attempt is not counted and its Execution row, which never ran, is removed.
    Fenced by lease token. Returns how many were released."""
    released = 0
    with transaction.atomic():
        for job_id, token in deliveries:
            done = Job.objects.filter(id=job_id, lease_token=token, state="running").update(
                state="scheduled", attempts=F("attempts") - 1, leased_until=None, worker=None)
            if done:
                Execution.objects.filter(job_id=job_id, lease_token=token,
                                         outcome__isnull=True).delete()
                released += done
    return released
