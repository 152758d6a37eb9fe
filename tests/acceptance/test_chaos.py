"""Chaos: jobs keep flowing while workers are killed, frozen and cut off from the database.

N jobs whose handler records every run in a ledger; 4 worker processes; every 1-3 s (uniformly
random) the whole process group of a random worker is SIGKILLed and a new worker started; one
worker is SIGSTOPped past the ack timeout and resumed; on PostgreSQL every database session of
the workers is terminated once. At the end every job must be `success`, none lost, and every
extra run of a job must be explained by an attempt the execution history records as lost.

`make test` runs 2,000 jobs; `make chaos` runs RELAY_CHAOS_JOBS=20000. The seed of the kill
schedule is printed; RELAY_CHAOS_SEED=<seed> replays the same choices of victim and interval.
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
from django.db import connection
from django.db.models import Count, Q

from queues import enqueue_many
from queues.models import Execution, Job, JobState, Outcome
from tests.conftest import wait_for
from tests.testapp.models import Ledger

pytestmark = pytest.mark.slow

JOBS = int(os.environ.get("RELAY_CHAOS_JOBS", "2000"))
ACK_TIMEOUT = 3.0
KILL_EVERY = (1.0, 3.0)  # seconds between kills, drawn uniformly
SEED = int(os.environ.get("RELAY_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
RELAY = {"HEARTBEAT_INTERVAL": 0.3, "WORKER_STALE_AFTER": 2.0, "RESCUE_INTERVAL": 0.3}


def terminate_worker_sessions() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return cursor.fetchone()[0]


def test_chaos(start_worker, vendor):
    rng = random.Random(SEED)
    print(f"\nchaos: seed={SEED} (RELAY_CHAOS_SEED to replay)")
    enqueue_many("tests.record", [(f"c{i}",) for i in range(JOBS)], ack_timeout=ACK_TIMEOUT,
                 max_attempts=None)
    workers = [start_worker(relay=RELAY, concurrency=2) for _ in range(4)]
    kept = workers[1]  # never killed: shows recovery from the connection cut without restart
    from queues.models import Worker

    wait_for(lambda: Worker.objects.filter(pid__in=[w.pid for w in workers]).count() == 4,
             message="the workers to start")
    kills, frozen, frozen_until, cut = 0, None, 0.0, vendor != "postgresql"
    started = time.monotonic()
    deadline = started + max(120.0, JOBS / 50)
    next_kill = started + rng.uniform(*KILL_EVERY)

    def pending() -> int:
        return Job.objects.exclude(state=JobState.SUCCESS).count()

    # Go on until every job is done and the freeze and the cut have both played out.
    while pending() or frozen is None or frozen_until or not cut:
        now = time.monotonic()
        assert now < deadline, f"{pending()} jobs not done after {now - started:.0f}s"
        elapsed = now - started
        if frozen is None and elapsed > 1.0:
            frozen = workers[0]
            frozen.signal_group(signal.SIGSTOP)
            frozen_until = now + ACK_TIMEOUT + 2.0
        if frozen is not None and frozen_until and now >= frozen_until:
            frozen.signal_group(signal.SIGCONT)
            frozen_until = 0.0
        if not cut and elapsed > 2.0:
            cut = terminate_worker_sessions() > 0
        if now >= next_kill:
            candidates = [w for w in workers
                          if w is not frozen and w is not kept and w.proc.poll() is None]
            victim = rng.choice(candidates)
            victim.signal_group(signal.SIGKILL)
            victim.proc.wait(timeout=10)
            workers.remove(victim)
            workers.append(start_worker(relay=RELAY, concurrency=2))
            kills += 1
            next_kill = now + rng.uniform(*KILL_EVERY)
        time.sleep(0.05)
    if frozen is not None and frozen_until:
        frozen.signal_group(signal.SIGCONT)

    runs = dict(Ledger.objects.values_list("job_id").annotate(n=Count("id")))
    lost_attempts = dict(Execution.objects.values_list("job_id").annotate(
        n=Count("id", filter=Q(outcome__in=[Outcome.LOST, Outcome.ERROR]))))
    duplicates = sum(n - 1 for n in runs.values() if n > 1)
    unattributed = sum(max(0, n - 1 - lost_attempts.get(job_id, 0))
                       for job_id, n in runs.items())
    never_ran = Job.objects.exclude(id__in=list(runs)).count()
    lost = Job.objects.exclude(state=JobState.SUCCESS).count()
    print(f"\nchaos: seed={SEED} jobs={JOBS} kills={kills} frozen=1 "
          f"connection_cut={vendor == 'postgresql'} lost={lost} never_ran={never_ran} "
          f"duplicates={duplicates} unattributed_duplicates={unattributed} "
          f"in {time.monotonic() - started:.1f}s")
    assert kills >= 1
    assert (lost, never_ran, unattributed) == (0, 0, 0)
    assert all(w.proc.poll() is None for w in workers)
    # The frozen worker recovered by itself: same process, heartbeating again.
    wait_for(lambda: Worker.objects.get(pid=frozen.pid).state == Worker.State.RUNNING,
             timeout=10, message="the frozen worker to report itself alive again")
    if vendor == "postgresql":
        wait_for(lambda: "database error" in kept.log_path.read_text(), timeout=10,
                 message="a worker to find its session cut, and go on")
        assert kept.proc.poll() is None
