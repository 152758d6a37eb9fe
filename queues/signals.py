"""Hooks other apps use to follow jobs without queues knowing about them.

`job_finished` is sent once a job reaches a terminal state (success, dead_letter, cancelled),
after the transaction that put it there commits. Arguments: job_id, state, task, queue.
"""

from __future__ import annotations

from django.dispatch import Signal

job_finished = Signal()
