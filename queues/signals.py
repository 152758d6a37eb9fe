"""Hooks other apps use to follow jobs without queues knowing about them.

`job_finished` is sent once a job reaches a terminal state (success, dead_letter, cancelled),
after the transaction that put it there commits. Arguments: job_id, state, task, queue,
meta (the job's `meta` dict, e.g. the workflow run a step job belongs to).

Receivers run in whichever process finished the job (a worker, or the web process for a
cancel); an exception in a receiver is the receiver's to handle.
"""

from __future__ import annotations

from django.dispatch import Signal

job_finished = Signal()
