"""Retention: delete finished jobs (and their executions and dead letters) past an age.

Work goes in small batches, each its own short transaction, so no lock is held for long and a
worker's claims -- which touch only waiting rows, through a partial index -- are never held up
for more than one batch. Rows of other apps that point at a job (a workflow step, a schedule
firing) keep their own history; their link to the job is cleared by Django's on_delete rules.
Jobs still waiting or running are never touched.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from queues.models import Job, JobState


@dataclass
class PruneReport:
    jobs: int = 0
    batches: int = 0
    longest_batch: float = 0.0  # seconds, the longest time one transaction held its locks


def prune(*, older_than: timedelta, keep_failed: bool = False, batch_size: int = 1000,
          pause: float = 0.0, limit: int | None = None) -> PruneReport:
    """Delete jobs that finished more than `older_than` ago. With keep_failed, dead-lettered
    jobs stay (an operator may still want them). `pause` seconds between batches lets a busy
    database breathe; `limit` stops after that many jobs."""
    states = [JobState.SUCCESS, JobState.CANCELLED]
    if not keep_failed:
        states.append(JobState.DEAD_LETTER)
    cutoff = timezone.now() - older_than
    report = PruneReport()
    after = 0
    while limit is None or report.jobs < limit:
        size = batch_size if limit is None else min(batch_size, limit - report.jobs)
        ids = list(
            Job.objects.filter(state__in=states, finished_at__lt=cutoff, id__gt=after)
            .order_by("id").values_list("id", flat=True)[:size]
        )
        if not ids:
            break
        started = time.monotonic()
        with transaction.atomic():
            # Re-checked under the delete: a job retried meanwhile is no longer finished.
            Job.objects.filter(id__in=ids, state__in=states, finished_at__lt=cutoff).delete()
        report.longest_batch = max(report.longest_batch, time.monotonic() - started)
        report.jobs += len(ids)
        report.batches += 1
        after = ids[-1]
        if pause:
            time.sleep(pause)
    return report
