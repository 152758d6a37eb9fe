"""A snapshot as Prometheus metric families (prometheus-client renders the exposition format).

Counters are totals over the whole history kept in the database (see `rollup`), so they agree
whichever web process is scraped and whichever worker did the work. Gauges describe now.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from dashboard.metrics.models import Tally
from dashboard.metrics.rollup import BUCKETS, Total
from dashboard.metrics.snapshot import Snapshot
from queues.models import Outcome
from scheduler.models import RunState

# Attempts whose duration says how long the handler ran: a lost attempt ends when its loss was
# noticed (lease expiry, stale heartbeat), not when anything finished.
TIMED_OUTCOMES = (Outcome.SUCCESS, Outcome.ERROR, Outcome.TIMEOUT, Outcome.CANCELLED)


class RelayCollector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        yield from self._counters()
        yield from self._queues()
        yield from self._workers()
        yield from self._scheduler()
        yield self._runs()
        yield _gauge("relay_metrics_collect_seconds",
                     "Seconds the last collection spent reading the database.",
                     self.snapshot.seconds)

    def _counters(self) -> Iterator[Metric]:
        enqueued = CounterMetricFamily(
            "relay_jobs_enqueued", "Jobs enqueued (deduplicated enqueues are not new jobs).",
            labels=["task", "queue"])
        attempts = CounterMetricFamily(
            "relay_job_attempts",
            "Attempts finished, by outcome: success, error, timeout, lost, cancelled. Each "
            "succeeded job has exactly one successful attempt.",
            labels=["task", "queue", "outcome"])
        dead = CounterMetricFamily(
            "relay_jobs_dead_lettered",
            "Jobs moved to dead letter, by reason (exhausted, not_retryable, lost); a job "
            "retried and dead-lettered again counts again.",
            labels=["task", "queue", "reason"])
        duration = HistogramMetricFamily(
            "relay_job_duration_seconds",
            "Attempt duration from claim to outcome (lost attempts excluded).",
            labels=["task", "queue"])
        timed: dict[tuple[str, str], Total] = {}
        for key, total in sorted(self.snapshot.totals.items(), key=lambda item: item[0]):
            if key.kind == Tally.Kind.ENQUEUED:
                enqueued.add_metric([key.task, key.queue], total.count)
            elif key.kind == Tally.Kind.DEAD_LETTER:
                dead.add_metric([key.task, key.queue, key.label], total.count)
            elif key.kind == Tally.Kind.ATTEMPT:
                attempts.add_metric([key.task, key.queue, key.label], total.count)
                if key.label in TIMED_OUTCOMES:
                    timed.setdefault((key.task, key.queue), Total()).add(total)
        for (task, queue), total in sorted(timed.items()):
            buckets = [(repr(float(b)), n) for b, n in zip(BUCKETS, total.buckets, strict=True)]
            duration.add_metric([task, queue], [*buckets, ("+Inf", total.count)],
                                sum_value=total.seconds)
        yield from (enqueued, attempts, dead, duration)

    def _queues(self) -> Iterator[Metric]:
        status = self.snapshot.status
        known = {q.name: q for q in status.queues}
        # Every queue jobs were ever enqueued to gets its gauges, so an emptied queue reads 0.
        names = sorted(set(known) | {k.queue for k in self.snapshot.totals}
                       | set(self.snapshot.dead_letters_open))
        depth = GaugeMetricFamily(
            "relay_queue_depth", "Jobs waiting in the queue: scheduled or awaiting a retry, "
            "due or not.", labels=["queue"])
        running = GaugeMetricFamily("relay_queue_running", "Jobs running now.", labels=["queue"])
        oldest = GaugeMetricFamily(
            "relay_queue_oldest_waiting_age_seconds",
            "How long the queue's longest-due waiting job has been due (0: none is due).",
            labels=["queue"])
        paused = GaugeMetricFamily("relay_queue_paused", "1 while the queue is paused.",
                                   labels=["queue"])
        workers = GaugeMetricFamily("relay_queue_workers_alive",
                                    "Live workers claiming the queue's jobs (stopping ones "
                                    "excluded).", labels=["queue"])
        for name in names:
            q = known.get(name)
            depth.add_metric([name], q.waiting if q else 0)
            running.add_metric([name], q.running if q else 0)
            oldest.add_metric([name], (q.oldest_due_age or 0.0) if q else 0.0)
            paused.add_metric([name], 1 if q and q.paused else 0)
            workers.add_metric([name], q.workers if q else 0)
        dead = GaugeMetricFamily("relay_dead_letters_open",
                                 "Dead letters waiting for an operator (not retried or "
                                 "discarded).", labels=["queue"])
        for name in names:
            dead.add_metric([name], self.snapshot.dead_letters_open.get(name, 0))
        yield from (depth, running, oldest, paused, workers, dead)

    def _workers(self) -> Iterator[Metric]:
        status = self.snapshot.status
        yield _gauge("relay_workers_alive",
                     "Workers whose last heartbeat is within WORKER_STALE_AFTER (running or "
                     "draining after SIGTERM).",
                     status.workers_alive)
        yield _gauge("relay_workers_stale",
                     "Workers registered as running but silent for longer than "
                     "WORKER_STALE_AFTER (not yet marked lost).", status.workers_stale)

    def _scheduler(self) -> Iterator[Metric]:
        lease = self.snapshot.status.scheduler
        yield _gauge("relay_scheduler_has_leader",
                     "1 while a relay_scheduler holds an unexpired leader lease.",
                     1 if lease.live else 0)
        leader = GaugeMetricFamily("relay_scheduler_leader",
                                   "1 for the scheduler holding the leader lease.",
                                   labels=["scheduler"])
        if lease.live:
            leader.add_metric([lease.holder], 1)
        yield leader
        if lease.last_tick_at is not None:
            yield _gauge("relay_scheduler_last_tick_timestamp_seconds",
                         "When the leading scheduler last ticked (Unix time, database clock).",
                         lease.last_tick_at.timestamp())
            yield _gauge("relay_scheduler_last_tick_age_seconds",
                         "Seconds since the leading scheduler last ticked (database clock).",
                         lease.last_tick_age or 0.0)

    def _runs(self) -> Metric:
        runs = GaugeMetricFamily("relay_workflow_runs", "Workflow runs by state.",
                                 labels=["state"])
        for state in RunState.values:
            runs.add_metric([state], self.snapshot.runs.get(state, 0))
        return runs


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)

