"""`manage.py relay_bench --jobs N --workers M`: throughput and latency, measured for real.

Each run starts M `relay_worker` processes on a private queue and measures:
  - enqueue-to-start latency of single jobs on idle workers (p50/p99, database clock)
  - bulk enqueue rate (jobs/s) of N no-op jobs, and single enqueue() calls per second, both
    into a queue no worker serves (the producer's own speed, not competing with claims)
  - drain rate: N no-op jobs from commit to the last acknowledgement (jobs/s)
  - mix: N jobs of which 5 % raise (one attempt each, so they end in dead_letter), from commit
    until every job has ended (jobs/s); the success and dead_letter counts are checked
Between runs the benchmark's rows are deleted and, on PostgreSQL, the tables vacuumed, so
every run starts from the same table state; the jobs a drain times are analyzed as they are
inserted, as the floor's are.
It prints each run and the median over --runs. Run it against a database you can write to.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.db.models import Count

from queues import Call, enqueue, enqueue_many
from queues.bench import workers as bench_workers
from queues.bench.workers import MIX_TASK
from queues.models import ACTIVE_STATES, Job, JobState, Worker

QUEUE = "relay-bench"
IDLE_QUEUE = "relay-bench-idle"  # enqueue-rate measurements: no worker serves it
MIX_FAIL_EVERY = 20  # every 20th job of the mix raises: 5 %


class Command(BaseCommand):
    help = "Benchmark enqueue, drain and latency with real worker processes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--jobs", type=int, default=5000)
        parser.add_argument("--workers", type=int, default=2)
        parser.add_argument("--concurrency", type=int, default=None,
                            help="Handler processes per worker (default: CPU count).")
        parser.add_argument("--runs", type=int, default=3)
        parser.add_argument("--latency-samples", type=int, default=50)
        parser.add_argument("--single-enqueues", type=int, default=1000)
        parser.add_argument("--json", default=None, help="Also write the results to this file.")
        parser.add_argument("--also-workers", type=int, action="append", default=[],
                            metavar="M", help="In each run also drain the same jobs with M "
                            "worker processes (repeatable), e.g. to compare 4 with 2.")
        parser.add_argument("--baselines", action="store_true",
                            help="PostgreSQL: in each run also drain the same jobs with a bare "
                                 "psycopg claim+ack loop (the floor) and with procrastinate "
                                 "(pip install .[bench]), same worker processes, and print ratios.")
        parser.add_argument("--prune-rows", type=int, default=0,
                            help="Instead: fill the table with this many finished jobs (and "
                                 "executions), run relay_prune over them and measure how long "
                                 "a concurrent worker's claims take meanwhile (PostgreSQL).")

    def handle(self, *args, jobs: int, workers: int, concurrency: int | None, runs: int,
               latency_samples: int, single_enqueues: int, json: str | None,
               prune_rows: int, baselines: bool, also_workers: list[int], **options) -> None:
        if prune_rows:
            return self._prune_scenario(prune_rows)
        if jobs < 1 or workers < 1 or runs < 1 or any(m < 1 for m in also_workers):
            raise CommandError("--jobs, --workers, --also-workers and --runs must be at least 1")
        if baselines:
            if connection.vendor != "postgresql":
                raise CommandError("--baselines runs PostgreSQL peers; use a postgres:// URL")
            try:
                import procrastinate  # noqa: F401
            except ImportError:
                raise CommandError("--baselines needs procrastinate: pip install '.[bench]'"
                                   ) from None
        concurrency = concurrency or os.cpu_count() or 1
        self.stdout.write(f"relay_bench: {connection.vendor}, {jobs} jobs, {workers} worker "
                          f"process(es) x {concurrency} handlers, {runs} run(s)")
        results = []
        for run in range(1, runs + 1):
            result = self._run(jobs, workers, concurrency, latency_samples, single_enqueues)
            for more in also_workers:
                result[f"drain_{more}_workers_per_s"] = self._drain(jobs, more, concurrency)
            if baselines:
                result.update(self._baselines(jobs, workers, concurrency))
            results.append(result)
            self.stdout.write(f"run {run}: " + _format(result))
        medians = {key: statistics.median(r[key] for r in results) for key in results[0]}
        self.stdout.write(self.style.SUCCESS("median: " + _format(medians)))
        if baselines:
            relay = medians["drain_per_s"]
            self.stdout.write(self.style.SUCCESS(
                f"drain ratios (medians): relay / procrastinate = "
                f"{relay / medians['procrastinate_drain_per_s']:.1f}x, relay / bare psycopg "
                f"claim+ack loop = {relay / medians['floor_drain_per_s']:.2f}x"))
        for more in also_workers:
            self.stdout.write(self.style.SUCCESS(
                f"drain with {more} / {workers} worker processes (medians) = "
                f"{medians[f'drain_{more}_workers_per_s'] / medians['drain_per_s']:.2f}x"))
        if json:
            Path(json).write_text(_json_dump({
                "database": connection.vendor, "jobs": jobs, "workers": workers,
                "concurrency": concurrency, "runs": results, "median": medians,
            }))

    def _run(self, jobs: int, workers: int, concurrency: int, latency_samples: int,
             single_enqueues: int) -> dict[str, float]:
        self._clean()
        procs = self._start_workers(workers, concurrency)
        try:
            latencies = self._latency(latency_samples)

            started = time.perf_counter()
            enqueue_many("relay.noop", (Call() for _ in range(jobs)), queue=IDLE_QUEUE)
            committed = time.perf_counter()
            single_started = time.perf_counter()
            for _ in range(single_enqueues):
                enqueue("relay.noop", queue=IDLE_QUEUE)
            single_elapsed = time.perf_counter() - single_started
            Job.objects.filter(queue=IDLE_QUEUE).delete()

            self._enqueue_burst("relay.noop", (Call() for _ in range(jobs)))
            drain_started = time.perf_counter()
            self._wait_drained(timeout=max(120.0, jobs / 50))
            drained = time.perf_counter()

            mix = self._mix(jobs)
        finally:
            self._stop_workers(procs)
        self._clean()
        return {
            "bulk_enqueue_per_s": jobs / (committed - started),
            "single_enqueue_per_s": single_enqueues / single_elapsed,
            "drain_per_s": jobs / (drained - drain_started),
            "p50_start_ms": _percentile(latencies, 50) * 1000,
            "p99_start_ms": _percentile(latencies, 99) * 1000,
            **mix,
        }

    def _drain(self, jobs: int, workers: int, concurrency: int) -> float:
        """Only the drain of `jobs` no-op jobs, with `workers` worker processes: jobs/s."""
        self._clean()
        procs = self._start_workers(workers, concurrency)
        try:
            self._enqueue_burst("relay.noop", (Call() for _ in range(jobs)))
            started = time.perf_counter()
            self._wait_drained(timeout=max(120.0, jobs / 50))
            elapsed = time.perf_counter() - started
        finally:
            self._stop_workers(procs)
        self._clean()
        return jobs / elapsed

    def _mix(self, jobs: int) -> dict[str, float]:
        """Drain `jobs` jobs of which every MIX_FAIL_EVERY-th raises; one attempt each, so the
        failures end in dead_letter (execution row, dead letter row) and the rest in success.
        Raises CommandError unless every job ended exactly as planned."""
        self._clean()
        failing = jobs // MIX_FAIL_EVERY
        self._enqueue_burst(MIX_TASK, ({"fail": i % MIX_FAIL_EVERY == MIX_FAIL_EVERY - 1}
                                       for i in range(jobs)))
        started = time.perf_counter()
        self._wait_drained(timeout=max(120.0, jobs / 50), pending=ACTIVE_STATES)
        elapsed = time.perf_counter() - started
        counts = dict(Job.objects.filter(queue=QUEUE).values_list("state")
                      .annotate(n=Count("id")))
        expected = {JobState.SUCCESS: jobs - failing, JobState.DEAD_LETTER: failing}
        if counts != {state: n for state, n in expected.items() if n}:
            raise CommandError(f"mix ended {counts}, expected {expected}")
        return {"mix_per_s": jobs / elapsed, "mix_success": counts.get(JobState.SUCCESS, 0),
                "mix_dead_letter": counts.get(JobState.DEAD_LETTER, 0)}

    @staticmethod
    def _enqueue_burst(task: str, calls) -> None:
        """Enqueue the jobs a drain times. On PostgreSQL the jobs table is analyzed in the same
        transaction, as the floor's table is: workers replan when it commits. Plans cached
        while the table was nearly empty (the latency samples) would otherwise outlive the
        burst -- the foreign-key check of each new execution row stays a sequential scan of
        the jobs table, a 5x slower drain at 20,000 jobs."""
        with transaction.atomic():
            enqueue_many(task, calls, queue=QUEUE)
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("ANALYZE queues_job")

    def _latency(self, samples: int) -> list[float]:
        """Enqueue one job at a time on idle workers; database-clock enqueue-to-start."""
        latencies = []
        for _ in range(samples):
            job = enqueue("relay.noop", queue=QUEUE)
            deadline = time.monotonic() + 30
            while True:
                row = Job.objects.filter(pk=job.pk).values("state", "created_at",
                                                           "started_at").get()
                if row["state"] == JobState.SUCCESS:
                    latencies.append((row["started_at"] - row["created_at"]).total_seconds())
                    break
                if time.monotonic() > deadline:
                    raise CommandError(f"job {job.pk} did not run within 30s; are workers up?")
                time.sleep(0.005)
        return latencies

    @staticmethod
    def _conninfo() -> str:
        from psycopg.conninfo import make_conninfo

        params = connection.get_connection_params()
        for key in ("cursor_factory", "context", "prepare_threshold"):
            params.pop(key, None)
        return make_conninfo(**{k: v for k, v in params.items() if v is not None})

    def _baselines(self, jobs: int, workers: int, concurrency: int) -> dict[str, float]:
        from queues.bench import floor, peer_procrastinate

        conninfo = self._conninfo()
        return {
            "floor_drain_per_s": floor.drain(conninfo, jobs, workers),
            "procrastinate_drain_per_s": peer_procrastinate.drain(conninfo, jobs, workers,
                                                                  concurrency),
        }

    def _prune_scenario(self, rows: int) -> None:
        """relay_prune over `rows` finished jobs while another connection claims waiting jobs
        one at a time; prints the prune's time and the claims' latencies meanwhile."""
        import threading
        from datetime import timedelta

        from django.db import connections

        from queues import store

        if connection.vendor != "postgresql":
            raise CommandError("--prune-rows measures PostgreSQL locking; use a postgres:// URL")
        self._clean()
        Job.objects.filter(queue="relay-bench-prune").delete()
        with connection.cursor() as cursor:
            cursor.execute(_FILL_FINISHED, [rows])
            cursor.execute(_FILL_EXECUTIONS)
            cursor.execute("ANALYZE queues_job")
            cursor.execute("ANALYZE queues_execution")
        enqueue_many("relay.noop", (Call() for _ in range(200_000)), queue=QUEUE)
        worker = Worker.objects.create(name="relay-bench-claimer", host="bench", pid=os.getpid(),
                                       queues=[QUEUE], tasks=["relay.noop"], concurrency=1)
        latencies: list[float] = []
        stop = threading.Event()

        def claimer() -> None:
            try:
                while not stop.is_set():
                    began = time.perf_counter()
                    store.claim(worker_id=worker.pk, queues=[QUEUE], tasks=["relay.noop"],
                                limit=1)
                    latencies.append(time.perf_counter() - began)
            finally:
                connections.close_all()

        thread = threading.Thread(target=claimer)
        thread.start()
        started = time.perf_counter()
        report = store.prune(older_than=timedelta(0), batch_size=1000)
        elapsed = time.perf_counter() - started
        stop.set()
        thread.join()
        Job.objects.filter(queue__in=[QUEUE, "relay-bench-prune"]).delete()
        worker.delete()
        self.stdout.write(
            f"prune: {report.jobs:,} finished jobs in {elapsed:.1f}s "
            f"({report.jobs / elapsed:,.0f} jobs/s, {report.batches} batches, longest batch "
            f"{report.longest_batch * 1000:.0f} ms)\n"
            f"concurrent claims: {len(latencies):,}, p50 {_percentile(latencies, 50) * 1000:.1f}"
            f" ms, p99 {_percentile(latencies, 99) * 1000:.1f} ms, "
            f"max {max(latencies) * 1000:.1f} ms"
        )

    @staticmethod
    def _clean() -> None:
        Job.objects.filter(queue__in=[QUEUE, IDLE_QUEUE]).delete()
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE queues_job")
                cursor.execute("VACUUM ANALYZE queues_execution")

    def _wait_drained(self, timeout: float, pending: tuple[str, ...] | None = None) -> None:
        """Wait until no job of QUEUE is in a `pending` state (default: any but success)."""
        deadline = time.monotonic() + timeout
        from queues.bench import DRAIN_POLL

        jobs = Job.objects.filter(queue=QUEUE)
        left = (jobs.filter(state__in=pending) if pending is not None
                else jobs.exclude(state=JobState.SUCCESS))
        while left.exists():
            if time.monotonic() > deadline:
                raise CommandError(f"queue not drained within {timeout:.0f}s")
            time.sleep(DRAIN_POLL)

    @staticmethod
    def _start_workers(count: int, concurrency: int) -> list[subprocess.Popen]:
        try:
            return bench_workers.start(QUEUE, count, concurrency)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None

    @staticmethod
    def _stop_workers(procs: list[subprocess.Popen]) -> None:
        bench_workers.stop(procs)


_FILL_FINISHED = """
INSERT INTO queues_job (task, queue, priority, args, kwargs, tags, meta, state, run_at,
    created_at, started_at, finished_at, attempts, max_attempts, backoff, timeout,
    ack_timeout, lease_token, last_error_type, last_error_message)
SELECT 'relay.noop', 'relay-bench-prune', 0, '[]', '{}', '[]', '{}', 'success',
       now() - interval '2 days', now() - interval '2 days', now() - interval '2 days',
       now() - interval '1 day', 1, 3, '{}', NULL, 30, 1, '', ''
FROM generate_series(1, %s)
"""

_FILL_EXECUTIONS = """
INSERT INTO queues_execution (job_id, attempt, lease_token, started_at, finished_at, outcome,
    error_type, error_message, traceback, late_outcome)
SELECT id, 1, 1, started_at, finished_at, 'success', '', '', '', ''
FROM queues_job WHERE queue = 'relay-bench-prune'
"""


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def _format(result: dict[str, float]) -> str:
    return "  ".join(f"{key}={value:,.0f}" if isinstance(value, int) else f"{key}={value:,.1f}"
                     for key, value in result.items())


def _json_dump(data: dict) -> str:
    return json.dumps(data, indent=2) + "\n"
