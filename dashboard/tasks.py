"""Background work of the control plane."""

from __future__ import annotations

import time

from queues.registry import task


@task(name="relay.bulk_operation", max_attempts=5, queue="relay")
def bulk_operation(operation_id: int) -> dict:
    """Work through a BulkOperation: the jobs matching its frozen filter, oldest first,
    RELAY["BULK_BATCH"] at a time with RELAY["BULK_PAUSE"] between batches. Progress is saved
    per batch (the cursor), so a redelivery after a crash continues where it stopped; the
    creator's permissions are checked again for every job."""
    from django.db import transaction
    from django.db.models import F
    from django.utils import timezone

    from dashboard.access import Access
    from dashboard.actions import Actor, BulkResult, _apply
    from dashboard.filters import JobFilter
    from dashboard.models import BulkOperation
    from queues.conf import relay_settings
    from queues.models import Job

    conf = relay_settings()
    op = BulkOperation.objects.select_related("created_by").get(pk=operation_id)
    if op.state in (BulkOperation.State.DONE, BulkOperation.State.FAILED):
        return {"done": op.done, "skipped": op.skipped}
    BulkOperation.objects.filter(pk=op.pk).update(state=BulkOperation.State.RUNNING)
    actor = Actor(op.created_by, Access(op.created_by), None, "dashboard")
    base = actor.access.jobs(JobFilter.from_params(op.filter).apply(Job.objects.all()))
    base = base.filter(id__lte=op.max_job_id).order_by("id")
    cursor = op.cursor
    while True:
        batch = list(base.filter(id__gt=cursor)[: conf.BULK_BATCH])
        if not batch:
            break
        result = BulkResult()
        with transaction.atomic():
            _apply(actor, op.action, batch, result)
            cursor = batch[-1].pk
            BulkOperation.objects.filter(pk=op.pk).update(
                cursor=cursor, done=F("done") + len(result.done),
                skipped=F("skipped") + len(result.skipped))
        time.sleep(conf.BULK_PAUSE)
    BulkOperation.objects.filter(pk=op.pk).update(state=BulkOperation.State.DONE,
                                                  finished_at=timezone.now())
    op.refresh_from_db()
    return {"done": op.done, "skipped": op.skipped}
