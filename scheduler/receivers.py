"""React at once to job outcomes: a step's job ending advances its run in the same process
that ended it (a worker, or the web process for a cancel), right after that commit."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("scheduler.engine")


def on_job_finished(sender: Any, job_id: int, state: str, meta: dict | None = None,
                    **kwargs: Any) -> None:
    run_id = (meta or {}).get("workflow_run")
    if not run_id:
        return
    from scheduler import engine

    try:
        engine.job_finished(job_id, state, int(run_id))
    except Exception:
        # Never break the worker that reported the job: the scheduler's sweep applies the
        # outcome on its next tick.
        logger.exception("could not advance run %s after job %s ended", run_id, job_id,
                         extra={"run_id": run_id, "job_id": job_id})
