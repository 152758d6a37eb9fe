"""Ending a delivery: fenced acks and failures, lease extension, progress.

Every statement here matches `id`, `lease_token` and `state = 'running'`: a worker whose lease
was taken away (it froze, its heartbeat went stale, its lease expired) can never overwrite the
outcome of a later delivery. Its late report is kept on its own Execution row, marked rejected.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models.functions import Now

from queues.backoff import Backoff
from queues.models import DeadLetter, Execution, Job, JobState, Outcome
from queues.signals import job_finished
from queues.store.clock import POSTGRES_NOW, SQLITE_NOW, NowPlus

logger = logging.getLogger("queues.store")


@dataclass(frozen=True, slots=True)
class Success:
    job_id: int
    lease_token: int
    output: Any = None


@dataclass(frozen=True, slots=True)
class Failure:
    job_id: int
    lease_token: int
    outcome: str  # Outcome.ERROR, TIMEOUT, LOST or CANCELLED
    error_type: str = ""
    error_message: str = ""
    traceback: str = ""
    retryable: bool = True
    # Worker shutdown: hand the job back without counting the attempt against max_attempts.
    release: bool = False


POSTGRES_ACK = f"""
WITH done AS (
    SELECT * FROM jsonb_to_recordset(%(batch)s::jsonb) AS d(id bigint, token bigint, output jsonb)
), acked AS (
    UPDATE queues_job AS j
    SET state = 'success', result = done.output, finished_at = {POSTGRES_NOW},
        leased_until = NULL, last_error_type = '', last_error_message = ''
    FROM done
    WHERE j.id = done.id AND j.lease_token = done.token AND j.state = 'running'
    RETURNING j.id, j.lease_token, j.task, j.queue, j.meta, j.finished_at
), closed AS (
    UPDATE queues_execution AS e
    SET outcome = 'success', finished_at = acked.finished_at, output = done.output
    FROM acked JOIN done ON done.id = acked.id
    WHERE e.job_id = acked.id AND e.lease_token = acked.lease_token
)
SELECT id, task, queue, meta FROM acked
"""

SQLITE_ACK_JOBS = f"""
UPDATE queues_job
SET state = 'success', result = json_extract(done.value, '$.output'),
    finished_at = {SQLITE_NOW}, leased_until = NULL, last_error_type = '', last_error_message = ''
FROM json_each(%(batch)s) AS done
WHERE queues_job.id = json_extract(done.value, '$.id')
  AND queues_job.lease_token = json_extract(done.value, '$.token')
  AND queues_job.state = 'running'
RETURNING id, task, queue, meta
"""

SQLITE_ACK_EXECUTIONS = f"""
UPDATE queues_execution
SET outcome = 'success', finished_at = {SQLITE_NOW}, output = json_extract(done.value, '$.output')
FROM json_each(%(batch)s) AS done
WHERE queues_execution.job_id = json_extract(done.value, '$.id')
  AND queues_execution.lease_token = json_extract(done.value, '$.token')
"""


def ack_success(reports: list[Success]) -> list[Success]:
    """Mark jobs done; returns the reports that were rejected (lease token no longer valid)."""
    if not reports:
        return []
    # json.dumps of the output was checked by the worker; null stays JSON null.
    if connection.vendor == "postgresql":
        batch = json.dumps([{"id": r.job_id, "token": r.lease_token, "output": r.output}
                            for r in reports])
        # One statement, so one implicit transaction: no BEGIN/COMMIT round trips.
        with connection.cursor() as cursor:
            cursor.execute(POSTGRES_ACK, {"batch": batch})
            acked = cursor.fetchall()
    else:
        # json_extract turns a JSON object into text but a JSON string into a bare string;
        # store the output pre-encoded so the column always holds JSON text.
        batch = json.dumps([{"id": r.job_id, "token": r.lease_token, "output": json.dumps(r.output)}
                            for r in reports])
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(SQLITE_ACK_JOBS, {"batch": batch})
            acked = cursor.fetchall()
            if acked:
                ok = {row[0] for row in acked}
                ok_batch = json.dumps(
                    [{"id": r.job_id, "token": r.lease_token, "output": json.dumps(r.output)}
                     for r in reports if r.job_id in ok]
                )
                cursor.execute(SQLITE_ACK_EXECUTIONS, {"batch": ok_batch})
    accepted = {row[0] for row in acked}
    for job_id, task, queue, meta in acked:
        _announce(job_id, JobState.SUCCESS, task, queue, meta)
    rejected = [r for r in reports if r.job_id not in accepted]
    for report in rejected:
        _record_late(report.job_id, report.lease_token, Outcome.SUCCESS)
    return rejected


def finish_failure(report: Failure, *, record_rejection: bool = True) -> str | None:
    """Apply a failed, timed-out, lost or cancelled attempt. Returns the job's new state, or
    None when the report was rejected because the lease token no longer matches."""
    with transaction.atomic():
        row = (
            Job.objects.select_for_update()
            .filter(id=report.job_id, lease_token=report.lease_token, state=JobState.RUNNING)
            .values("task", "queue", "meta", "attempts", "max_attempts", "backoff",
                    "cancel_requested_at")
            .first()
        )
        if row is None:
            rejected = True
        else:
            rejected = False
            state, delay, reason = _next_state(report, row)
            _apply(report, row, state, delay, reason)
    if rejected:
        if record_rejection:
            _record_late(report.job_id, report.lease_token, report.outcome)
        return None
    return state


def _next_state(report: Failure, row: dict) -> tuple[str, float, str]:
    """(new job state, retry delay, dead-letter reason) for a failed attempt."""
    if report.outcome == Outcome.CANCELLED or row["cancel_requested_at"] is not None:
        return JobState.CANCELLED, 0.0, ""
    if report.release:
        return JobState.SCHEDULED, 0.0, ""
    if not report.retryable:
        return JobState.DEAD_LETTER, 0.0, DeadLetter.Reason.NOT_RETRYABLE
    max_attempts = row["max_attempts"]
    if max_attempts is not None and row["attempts"] >= max_attempts:
        reason = DeadLetter.Reason.LOST if report.outcome == Outcome.LOST else (
            DeadLetter.Reason.EXHAUSTED
        )
        return JobState.DEAD_LETTER, 0.0, reason
    if report.outcome == Outcome.LOST:
        # The attempt never reported: redeliver at once, the handler did not fail.
        return JobState.SCHEDULED, 0.0, ""
    return JobState.FAILED, Backoff.from_dict(row["backoff"]).delay(row["attempts"]), ""


def _apply(report: Failure, row: dict, state: str, delay: float, reason: str) -> None:
    changes: dict[str, Any] = {
        "state": state,
        "leased_until": None,
        "last_error_type": report.error_type,
        "last_error_message": report.error_message,
    }
    if state in (JobState.CANCELLED, JobState.DEAD_LETTER):
        changes["finished_at"] = Now()
    else:
        changes["run_at"] = NowPlus(delay) if delay else Now()
    if report.release:
        changes["attempts"] = max(row["attempts"] - 1, 0)
    Job.objects.filter(id=report.job_id).update(**changes)
    Execution.objects.filter(job_id=report.job_id, lease_token=report.lease_token).update(
        outcome=report.outcome,
        finished_at=Now(),
        error_type=report.error_type,
        error_message=report.error_message,
        traceback=report.traceback,
    )
    if state == JobState.DEAD_LETTER:
        DeadLetter.objects.create(
            job_id=report.job_id,
            reason=reason,
            error_type=report.error_type,
            error_message=report.error_message,
            attempts=row["attempts"],
        )
    if state in (JobState.CANCELLED, JobState.DEAD_LETTER):
        _announce(report.job_id, state, row["task"], row["queue"], row["meta"])


def extend_lease(job_id: int, lease_token: int, seconds: float, progress: Any = None,
                 *, set_progress: bool = False) -> bool:
    """Push the lease deadline to database-now + seconds (and optionally record progress)."""
    changes: dict[str, Any] = {"leased_until": NowPlus(seconds)}
    if set_progress:
        changes["progress"] = progress
    return bool(
        Job.objects.filter(id=job_id, lease_token=lease_token, state=JobState.RUNNING).update(
            **changes
        )
    )


def set_progress(job_id: int, lease_token: int, progress: Any) -> bool:
    return bool(
        Job.objects.filter(id=job_id, lease_token=lease_token, state=JobState.RUNNING).update(
            progress=progress
        )
    )


def _record_late(job_id: int, lease_token: int, outcome: str) -> None:
    Execution.objects.filter(job_id=job_id, lease_token=lease_token).update(
        late_outcome=outcome, late_reported_at=Now()
    )
    logger.warning(
        "rejected stale report for job %s: its lease (token %s) was taken over",
        job_id,
        lease_token,
        extra={"job_id": job_id, "lease_token": lease_token, "late_outcome": outcome},
    )


def _announce(job_id: int, state: str, task: str, queue: str, meta: Any) -> None:
    if isinstance(meta, str):  # SQLite's RETURNING gives JSON as text
        meta = json.loads(meta) if meta not in ("", "{}") else {}
    meta = meta or {}
    transaction.on_commit(
        lambda: job_finished.send(
            sender=Job, job_id=job_id, state=str(state), task=task, queue=queue, meta=meta
        )
    )
