"""The only code that writes job, execution, worker and dead-letter rows.

Each function is one guarded transition; the SQL for each database lives next to it.
"""

from queues.store.claim import Claimed, claim, release_unstarted
from queues.store.control import cancel, discard, pause_queue, resume_queue, retry
from queues.store.finish import (
    Failure,
    Success,
    ack_success,
    extend_lease,
    finish_failure,
    set_progress,
)
from queues.store.insert import insert_job, insert_jobs
from queues.store.notify import Listener, announce, data_version, has_due
from queues.store.prune import PruneReport, prune
from queues.store.rescue import rescue
from queues.store.workers import heartbeat, lease_report, register_worker, stop_worker

__all__ = [
    "Claimed",
    "Failure",
    "Listener",
    "PruneReport",
    "Success",
    "ack_success",
    "announce",
    "cancel",
    "claim",
    "data_version",
    "discard",
    "extend_lease",
    "finish_failure",
    "has_due",
    "heartbeat",
    "insert_job",
    "insert_jobs",
    "lease_report",
    "pause_queue",
    "prune",
    "register_worker",
    "release_unstarted",
    "rescue",
    "resume_queue",
    "retry",
    "set_progress",
    "stop_worker",
]
