"""The claim stays an index walk over due jobs however many finished jobs the table holds."""

from __future__ import annotations

import json
import time

import pytest
from django.db import connection

from queues import enqueue
from queues.store.claim import postgres_claim_sql

pytestmark = pytest.mark.slow

FINISHED = """
INSERT INTO queues_job (task, queue, priority, args, kwargs, tags, meta, state, run_at,
    created_at, started_at, finished_at, attempts, max_attempts, backoff, timeout,
    ack_timeout, lease_token, last_error_type, last_error_message)
SELECT 'tests.record', 'default', (g %% 21) - 10, '[]', '{}', '[]', '{}',
       CASE WHEN g %% 50 = 0 THEN 'dead_letter' ELSE 'success' END,
       now() - interval '1 day', now() - interval '1 day', now() - interval '1 day', now(),
       1, 3, '{}', NULL, 30, 1, '', ''
FROM generate_series(1, %s) AS g
"""


def plan_nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


def test_the_claim_uses_the_due_jobs_index_with_a_million_finished_rows(transactional_db,
                                                                        vendor):
    if vendor != "postgresql":
        pytest.skip("EXPLAIN plans are PostgreSQL's; SQLite serves one machine's volumes")
    with connection.cursor() as cursor:
        cursor.execute(FINISHED, [1_000_000])
        cursor.execute("ANALYZE queues_job")
    due = [enqueue("tests.record", f"due {i}", priority=i % 3) for i in range(5)]
    params = {"queues": ["default"], "queue": "default", "tasks": ["tests.record"], "limit": 10,
              "worker": None}
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + postgres_claim_sql(["default"]), params)
        raw = cursor.fetchone()[0]
    plan = (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]
    scans = [node for node in plan_nodes(plan) if node.get("Relation Name") == "queues_job"]
    kinds = {(node["Node Type"], node.get("Index Name")) for node in scans}
    print("claim plan over queues_job:", sorted(kinds, key=str))
    assert ("Index Scan", "job_claim_idx") in kinds, kinds
    assert not any(kind == "Seq Scan" for kind, _ in kinds), kinds
    # The index order is the claim order: no sort of candidate rows.
    picked = next(n for n in plan_nodes(plan) if n.get("Index Name") == "job_claim_idx")
    assert picked["Scan Direction"] == "Forward"
    assert not any(n["Node Type"] == "Sort" for n in plan_nodes(plan))

    from queues import store

    worker = store.register_worker(name="plan", host="h", pid=1, queues=["default"],
                                   tasks=["tests.record"], concurrency=1)
    started = time.perf_counter()
    claimed = store.claim(worker_id=worker.pk, queues=["default"], tasks=["tests.record"],
                          limit=10)
    print(f"claim of {len(claimed)} among 1,000,000 finished rows: "
          f"{(time.perf_counter() - started) * 1000:.1f} ms")
    assert [c.id for c in claimed] == [j.pk for j in sorted(due, key=lambda j: (-j.priority,
                                                                                  j.pk))]
