"""Dedup keys hold under concurrency, and enqueue is atomic with the caller's transaction."""

from __future__ import annotations

import multiprocessing
import threading

import pytest
from django.db import connection, connections, transaction

from queues import enqueue
from queues.models import Job

pytestmark = pytest.mark.slow

CALLERS = 50


def _enqueue_same_key(barrier, results, index, commit_index, hold: float) -> None:
    """One caller: enqueue with the shared key inside a transaction, then commit or roll back."""
    import time

    from django.db import close_old_connections

    close_old_connections()
    barrier.wait()
    try:
        with transaction.atomic():
            job = enqueue("tests.record", f"caller {index}", dedup_key="nightly-report")
            results.append((index, job.pk, job.deduplicated))
            time.sleep(hold)
            if index != commit_index:
                raise _Rollback
    except _Rollback:
        pass
    finally:
        connections.close_all()


class _Rollback(Exception):
    pass


def _run_callers(vendor: str, commit_index: int | None, hold: float) -> list[tuple]:
    if vendor == "postgresql":
        # Separate processes, separate connections: the way web servers enqueue.
        ctx = multiprocessing.get_context("fork")
        manager = ctx.Manager()
        results = manager.list()
        barrier = ctx.Barrier(CALLERS)
        connections.close_all()
        procs = [
            ctx.Process(target=_child, args=(barrier, results, i, commit_index, hold))
            for i in range(CALLERS)
        ]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(timeout=120)
            assert proc.exitcode == 0
        collected = list(results)
        manager.shutdown()
        return collected
    results: list[tuple] = []
    barrier = threading.Barrier(CALLERS)
    threads = [
        threading.Thread(target=_enqueue_same_key,
                         args=(barrier, results, i, commit_index, hold))
        for i in range(CALLERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def _child(barrier, results, index, commit_index, hold) -> None:
    if commit_index is None:
        commit_index = index  # everyone commits
    _enqueue_same_key(barrier, results, index, commit_index, hold)


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_enqueues_with_one_key_make_one_job(vendor):
    results = _run_callers(vendor, None, 0.0) if vendor == "postgresql" else _run_all_commit()
    assert len(results) == CALLERS
    jobs = Job.objects.filter(dedup_key="nightly-report")
    assert jobs.count() == 1
    job = jobs.get()
    assert {pk for _, pk, _ in results} == {job.pk}
    assert sum(1 for *_, dedup in results if not dedup) == 1


def _run_all_commit() -> list[tuple]:
    results: list[tuple] = []
    barrier = threading.Barrier(CALLERS)

    def call(index: int) -> None:
        barrier.wait()
        try:
            job = enqueue("tests.record", f"caller {index}", dedup_key="nightly-report")
            results.append((index, job.pk, job.deduplicated))
        finally:
            connection.close()

    threads = [threading.Thread(target=call, args=(i,)) for i in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


@pytest.mark.django_db(transaction=True)
def test_49_rollbacks_and_one_commit_leave_exactly_one_job(vendor):
    results = _run_callers(vendor, commit_index=17, hold=0.02)
    assert len(results) == CALLERS
    [job] = Job.objects.filter(dedup_key="nightly-report")
    assert job.args == ["caller 17"]
    for index, pk, deduplicated in results:
        # A caller either created its own job (kept if it committed) or was handed the job
        # that is now committed -- never one that another caller later rolled back.
        if deduplicated:
            assert pk == job.pk, f"caller {index} was handed an uncommitted job"
        elif index == 17:
            assert pk == job.pk


@pytest.mark.django_db(transaction=True)
def test_enqueue_rolls_back_with_the_callers_transaction():
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue("tests.record", "doomed")
        raise RuntimeError("the caller's own write failed")
    assert not Job.objects.exists()
