"""Background work of the control plane.

`relay.bulk_operation` runs on the "relay" queue: run a worker that serves it
(`manage.py relay_worker --queues default,relay`) or bulk actions above
RELAY["BULK_INLINE_LIMIT"] jobs stay pending.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from queues.exceptions import DoNotRetry, JobCancelled
from queues.registry import task

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5


@task(name="relay.bulk_operation", max_attempts=MAX_ATTEMPTS, queue="relay", takes_context=True)
def bulk_operation(context: Any, operation_id: int) -> dict:
    """The worker's entry point: see `run_operation`. The lease is extended after every
    batch, so an operation longer than the ack timeout is never delivered twice at once."""
    return run_operation(operation_id, context=context)


def run_operation(operation_id: int, *, context: Any = None) -> dict:
    """Work through a BulkOperation: the jobs matching its frozen filter up to its id bound,
    oldest first, RELAY["BULK_BATCH"] at a time with RELAY["BULK_PAUSE"] s between batches.
    Progress (the cursor and the counts) commits with each batch, so a redelivery after a
    crash continues where it stopped; the creator's permissions are checked again for every
    job. Callable directly (tests, a shell): `context` is then None."""
    from django.db import transaction
    from django.db.models import F
    from django.utils import timezone

    from dashboard.access import Access
    from dashboard.actions import BULK_ACTIONS, Actor, BulkResult, _apply
    from dashboard.filters import FilterError
    from dashboard.fingerprints import filter_from_params
    from dashboard.models import BulkOperation
    from queues.conf import relay_settings
    from queues.models import Job

    conf = relay_settings()
    op = BulkOperation.objects.select_related("created_by").get(pk=operation_id)
    state = BulkOperation.State
    if op.state in (state.DONE, state.FAILED):
        return {"done": op.done, "skipped": op.skipped, "state": op.state}

    def fail(message: str) -> dict:
        BulkOperation.objects.filter(pk=op.pk).update(state=state.FAILED, error=message[:2000],
                                                      finished_at=timezone.now())
        logger.warning("bulk operation %s failed: %s", op.pk, message,
                       extra={"action": f"bulk_{op.action}", "operation_id": op.pk})
        return {"done": op.done, "skipped": op.skipped, "state": state.FAILED}

    if op.action not in BULK_ACTIONS:
        return fail(f"unknown action {op.action!r}")
    if op.created_by is None or not op.created_by.is_active:
        return fail("the user who started it no longer exists or is inactive")
    try:
        job_filter = filter_from_params(op.filter)
    except FilterError as exc:
        return fail(f"invalid filter: {exc}")

    BulkOperation.objects.filter(pk=op.pk).update(state=state.RUNNING, error="")
    actor = Actor(op.created_by, Access(op.created_by), None, "dashboard")
    base = actor.access.jobs(job_filter.apply(Job.objects.all()))
    base = base.filter(id__lte=op.max_job_id).order_by("id")
    cursor, done, skipped = op.cursor, op.done, op.skipped
    try:
        while True:
            batch = list(base.filter(id__gt=cursor)[: conf.BULK_BATCH])
            if not batch:
                break
            result = BulkResult()
            with transaction.atomic():
                _apply(actor, op.action, job_filter.select(batch), result, note=op.reason)
                cursor = batch[-1].pk
                done, skipped = done + len(result.done), skipped + len(result.skipped)
                BulkOperation.objects.filter(pk=op.pk).update(
                    cursor=cursor, done=F("done") + len(result.done),
                    skipped=F("skipped") + len(result.skipped))
            if context is not None:
                context.extend_lease(progress={"done": done, "skipped": skipped,
                                               "expected": op.expected})
            if len(batch) < conf.BULK_BATCH:
                break
            if conf.BULK_PAUSE > 0:
                time.sleep(conf.BULK_PAUSE)
    except JobCancelled:
        fail("the background job was cancelled")
        raise
    except Exception as exc:
        final = context is None or (context.max_attempts is not None
                                    and context.attempt >= context.max_attempts)
        message = f"{type(exc).__name__}: {exc}"
        if final:
            fail(message)
            raise DoNotRetry(message) from exc
        BulkOperation.objects.filter(pk=op.pk).update(error=f"{message} (will retry)"[:2000])
        raise
    BulkOperation.objects.filter(pk=op.pk).update(state=state.DONE, error="",
                                                  finished_at=timezone.now())
    logger.info("bulk operation %s done: %s done, %s skipped", op.pk, done, skipped,
                extra={"action": f"bulk_{op.action}", "operation_id": op.pk})
    return {"done": done, "skipped": skipped, "state": state.DONE}
