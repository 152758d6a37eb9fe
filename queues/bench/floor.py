"""The database's floor for relay_bench: bare psycopg processes doing one claim (FOR UPDATE
SKIP LOCKED) and one ack per job, two commits per job, on a scratch table -- no framework, no
handler, no history. What Relay does beyond this (executions, leases, batching) is measured
against it."""

from __future__ import annotations

import subprocess
import sys
import time

TABLE = "relay_bench_floor"

CLAIM = f"""
UPDATE {TABLE} SET state = 'running'
WHERE id = (SELECT id FROM {TABLE} WHERE state = 'waiting' ORDER BY id
            FOR UPDATE SKIP LOCKED LIMIT 1)
RETURNING id
"""
ACK = f"UPDATE {TABLE} SET state = 'done' WHERE id = %s"


def drain(conninfo: str, jobs: int, workers: int) -> float:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(f"CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, state text NOT NULL)")
        conn.execute(f"CREATE INDEX ON {TABLE} (id) WHERE state = 'waiting'")
        conn.execute(f"INSERT INTO {TABLE} (state) SELECT 'waiting' FROM generate_series(1, %s)",
                     [jobs])
        conn.execute(f"ANALYZE {TABLE}")
    entry = "import sys; from queues.bench.floor import work; work(sys.argv[1])"
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", entry, conninfo]) for _ in range(workers)]
    for proc in procs:
        proc.wait(timeout=max(300.0, jobs / 20))
    elapsed = time.perf_counter() - started
    with psycopg.connect(conninfo, autocommit=True) as conn:
        left = conn.execute(f"SELECT count(*) FROM {TABLE} WHERE state <> 'done'").fetchone()[0]
        conn.execute(f"DROP TABLE {TABLE}")
    if left:
        raise RuntimeError(f"floor loop left {left} rows")
    return jobs / elapsed


def work(conninfo: str) -> None:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        while True:
            row = conn.execute(CLAIM).fetchone()
            if row is None:
                return
            conn.execute(ACK, [row[0]])
