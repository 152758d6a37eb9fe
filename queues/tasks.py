"""Tasks that ship with Relay."""

from __future__ import annotations

from queues.registry import task


@task(name="relay.noop")
def noop(*args, **kwargs) -> None:
    """Does nothing: for benchmarks and for checking that a queue is served."""
    return None


class BenchFailure(Exception):
    """Raised on purpose by relay.bench_maybe_fail."""


@task(name="relay.bench_maybe_fail", max_attempts=1)
def bench_maybe_fail(fail: bool = False) -> None:
    """A no-op that raises when `fail` is true: relay_bench's mix of succeeding and failing
    jobs. One attempt, so a failure goes straight to dead_letter and the drain ends."""
    if fail:
        raise BenchFailure("failed on purpose (relay_bench mix)")


@task(name="relay.prune", max_attempts=3, timeout=3600)
def prune(older_than_days: float = 30, keep_failed: bool = False) -> dict:
    """`relay_prune` as a task, so a schedule can run it (e.g. nightly, target relay.prune,
    input {"older_than_days": 30})."""
    from datetime import timedelta

    from queues import store

    if not isinstance(older_than_days, (int, float)) or older_than_days < 0:
        raise ValueError(f"older_than_days must be a number >= 0, not {older_than_days!r}")
    report = store.prune(older_than=timedelta(days=older_than_days), keep_failed=keep_failed)
    return {"jobs": report.jobs, "batches": report.batches,
            "longest_batch_ms": round(report.longest_batch * 1000)}
