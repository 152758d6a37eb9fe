"""Running jobs: the supervisor loop (`Worker`) and its handler processes."""

from queues.worker.context import JobContext
from queues.worker.supervisor import Worker

__all__ = ["JobContext", "Worker"]
