"""procrastinate 3.x draining no-op jobs, as a peer baseline for relay_bench.

`work()` runs one worker process; `drain()` starts them, defers the jobs in bulk and times
them until every one succeeded. Its tables (`procrastinate_*`) are created once in the same
database and only the benchmark queue's rows are deleted afterwards. Needs
`pip install .[bench]`.
"""

from __future__ import annotations

import subprocess
import sys
import time

from queues.bench import DRAIN_POLL

QUEUE = "relay-bench-peer"


def _app(conninfo: str, *, sync: bool):
    import procrastinate

    connector = (procrastinate.SyncPsycopgConnector(conninfo=conninfo) if sync
                 else procrastinate.PsycopgConnector(conninfo=conninfo))
    app = procrastinate.App(connector=connector)

    @app.task(name="noop", queue=QUEUE)
    def noop() -> None:
        return None

    return app, noop


def ensure_schema(conninfo: str) -> None:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()[0]
    if not exists:
        app, _ = _app(conninfo, sync=True)
        with app.open():
            app.schema_manager.apply_schema()


def drain(conninfo: str, jobs: int, workers: int, concurrency: int) -> float:
    """Start `workers` procrastinate worker processes, defer `jobs` no-op jobs and return the
    drain rate (jobs/s) from commit to the last success."""
    import logging

    import psycopg

    # Its INFO log lists every deferred job; keep the benchmark's output (and CPU) for work.
    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    ensure_schema(conninfo)
    _delete(conninfo)
    entry = "import sys; from queues.bench.peer_procrastinate import work; work(*sys.argv[1:])"
    procs = [subprocess.Popen([sys.executable, "-c", entry, conninfo, str(concurrency)],
                              start_new_session=True)
             for _ in range(workers)]
    try:
        time.sleep(2.0)  # let them connect and LISTEN
        app, noop = _app(conninfo, sync=True)
        with app.open():
            for start in range(0, jobs, 5000):
                noop.batch_defer(*([{}] * min(5000, jobs - start)))
        started = time.perf_counter()
        with psycopg.connect(conninfo, autocommit=True) as conn:
            deadline = time.monotonic() + max(300.0, jobs / 20)
            while True:
                left = conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM procrastinate_jobs WHERE queue_name = %s "
                    "AND status <> 'succeeded')", [QUEUE]).fetchone()[0]
                if not left:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("procrastinate did not drain its jobs in time")
                time.sleep(DRAIN_POLL)
        return jobs / (time.perf_counter() - started)
    finally:
        from queues.management.processes import terminate

        terminate(procs, timeout=30)
        _delete(conninfo)


def _delete(conninfo: str) -> None:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("DELETE FROM procrastinate_jobs WHERE queue_name = %s", [QUEUE])


def work(conninfo: str, concurrency: str) -> None:
    """One procrastinate worker process (until SIGTERM)."""
    app, _ = _app(conninfo, sync=False)
    app.run_worker(queues=[QUEUE], concurrency=int(concurrency), wait=True)
