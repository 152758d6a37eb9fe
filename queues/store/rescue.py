"""Redelivery of jobs whose worker died or whose lease ran out.

Every worker runs this every RESCUE_INTERVAL (the scheduler does too), so the queue heals
itself with no other process running. The redelivery goes through the same fenced path as a
worker's own failure report: if the owner acks at the same moment, exactly one of them wins.
"""

from __future__ import annotations

import logging

from queues.models import Job, Outcome
from queues.store.finish import Failure, finish_failure
from queues.store.workers import mark_stale_workers, orphaned_leases_q

logger = logging.getLogger("queues.rescue")


def rescue(*, stale_after: float, limit: int = 200) -> int:
    """Mark silent workers lost and redeliver orphaned jobs. Returns jobs redelivered."""
    lost_workers = mark_stale_workers(stale_after)
    if lost_workers:
        logger.warning("marked %d silent worker(s) lost", lost_workers,
                       extra={"workers_lost": lost_workers})
    orphans = list(
        Job.objects.filter(orphaned_leases_q())
        .order_by("leased_until")
        .values_list("id", "lease_token", "worker__name")[:limit]
    )
    rescued = 0
    for job_id, token, worker_name in orphans:
        state = finish_failure(
            Failure(
                job_id=job_id,
                lease_token=token,
                outcome=Outcome.LOST,
                error_type="queues.exceptions.LeaseExpired",
                error_message=(
                    f"no acknowledgement before the lease ran out "
                    f"(worker {worker_name or 'unknown'} died, froze or was cut off)"
                ),
            ),
            record_rejection=False,
        )
        if state is not None:
            rescued += 1
            logger.warning(
                "job %s lost by worker %s, now %s", job_id, worker_name, state,
                extra={"job_id": job_id, "outcome": "lost", "state": state},
            )
    return rescued
