"""Queue rows: jobs, one execution per attempt, dead letters, workers.

Rows are changed only through `queues.store` (claim, ack, fail, rescue ...) so every
transition is guarded in one place; these classes name states and serve reads.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now


class JobState(models.TextChoices):
    SCHEDULED = "scheduled"  # waiting for run_at, then claimable
    RUNNING = "running"  # leased to exactly one worker until leased_until
    SUCCESS = "success"  # acknowledged; result stored
    FAILED = "failed"  # an attempt failed; the retry is due at run_at
    DEAD_LETTER = "dead_letter"  # attempts exhausted or not retryable; waits for an operator
    CANCELLED = "cancelled"  # cancelled before or while it ran


WAITING_STATES = (JobState.SCHEDULED, JobState.FAILED)  # claimable once run_at is due
ACTIVE_STATES = (JobState.SCHEDULED, JobState.RUNNING, JobState.FAILED)  # dedup keys held
TERMINAL_STATES = (JobState.SUCCESS, JobState.DEAD_LETTER, JobState.CANCELLED)


class Outcome(models.TextChoices):
    SUCCESS = "success"  # the handler returned; the ack was accepted
    ERROR = "error"  # the handler raised, or its process died
    TIMEOUT = "timeout"  # the handler ran past its time limit and was stopped
    LOST = "lost"  # the lease expired or the worker died before an ack
    CANCELLED = "cancelled"  # stopped by a cancel request


class JobQuerySet(models.QuerySet):
    def waiting(self) -> JobQuerySet:
        return self.filter(state__in=WAITING_STATES)

    def due(self) -> JobQuerySet:
        return self.waiting().filter(run_at__lte=Now())

    def running(self) -> JobQuerySet:
        return self.filter(state=JobState.RUNNING)

    def active(self) -> JobQuerySet:
        return self.filter(state__in=ACTIVE_STATES)

    def finished(self) -> JobQuerySet:
        return self.filter(state__in=TERMINAL_STATES)

    def dead(self) -> JobQuerySet:
        return self.filter(state=JobState.DEAD_LETTER)


class Job(models.Model):
    task = models.CharField(max_length=200)
    queue = models.CharField(max_length=100)
    priority = models.SmallIntegerField(default=0, help_text="Higher runs first (-100..100).")
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=list, blank=True)
    # Free-form data for other apps (e.g. the workflow run a step belongs to); queues ignores it.
    meta = models.JSONField(default=dict, blank=True)

    state = models.CharField(
        max_length=20, choices=JobState.choices, default=JobState.SCHEDULED
    )
    run_at = models.DateTimeField(db_default=Now(), help_text="Due time (database clock).")
    created_at = models.DateTimeField(db_default=Now())
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # Delivery policy, resolved from the task's options when the job was enqueued.
    attempts = models.PositiveIntegerField(
        default=0, help_text="Attempts started since enqueue or the last manual retry."
    )
    max_attempts = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: retry forever."
    )
    backoff = models.JSONField(default=dict, blank=True)
    timeout = models.FloatField(null=True, blank=True, help_text="Seconds per attempt.")
    ack_timeout = models.FloatField(help_text="Lease length in seconds.")

    # Fencing: every claim increments lease_token; ack and fail must present it.
    lease_token = models.BigIntegerField(default=0)
    leased_until = models.DateTimeField(null=True, blank=True)
    worker = models.ForeignKey(
        "Worker", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    cancel_requested_at = models.DateTimeField(null=True, blank=True)

    dedup_key = models.CharField(max_length=255, null=True, blank=True)
    progress = models.JSONField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    last_error_type = models.CharField(max_length=255, blank=True, default="")
    last_error_message = models.TextField(blank=True, default="")

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The claim: due jobs of a queue, best priority first, then oldest.
            models.Index(
                "queue",
                models.F("priority").desc(),
                "id",
                name="job_claim_idx",
                condition=Q(state__in=WAITING_STATES),
            ),
            # The rescuer: running jobs by lease deadline.
            models.Index(
                fields=["leased_until"],
                name="job_lease_idx",
                condition=Q(state=JobState.RUNNING),
            ),
            # List pages, newest first, filtered by state, queue or task.
            # include: the overview's per-queue and recently-finished counts are index-only.
            models.Index(fields=["state", "-id"], name="job_state_idx",
                         include=["queue", "finished_at"]),
            models.Index(fields=["queue", "-id"], name="job_queue_idx"),
            models.Index(fields=["task", "-id"], name="job_task_idx"),
            models.Index(
                fields=["dedup_key", "-finished_at"],
                name="job_dedup_idx",
                condition=Q(dedup_key__isnull=False),
            ),
        ]
        constraints = [
            # The database, not a check-then-insert, guarantees one active job per dedup key.
            models.UniqueConstraint(
                fields=["dedup_key"],
                condition=Q(state__in=ACTIVE_STATES, dedup_key__isnull=False),
                name="job_dedup_active_uniq",
            ),
            models.CheckConstraint(
                condition=Q(state__in=TERMINAL_STATES, finished_at__isnull=False)
                | (~Q(state__in=TERMINAL_STATES) & Q(finished_at__isnull=True)),
                name="job_finished_iff_terminal",
            ),
            models.CheckConstraint(
                condition=~Q(state=JobState.RUNNING) | Q(leased_until__isnull=False),
                name="job_running_has_lease",
            ),
            models.CheckConstraint(
                condition=Q(priority__gte=-100, priority__lte=100), name="job_priority_range"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.task} ({self.state})"

    # Set on the instance enqueue() returns when the dedup key matched an existing job.
    deduplicated = False

    @property
    def is_finished(self) -> bool:
        return self.state in TERMINAL_STATES


class Worker(models.Model):
    class State(models.TextChoices):
        RUNNING = "running"  # heartbeating and claiming
        STOPPING = "stopping"  # draining after SIGTERM, claims nothing new
        STOPPED = "stopped"  # exited cleanly
        LOST = "lost"  # stopped heartbeating; its jobs were redelivered

    name = models.CharField(max_length=255)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list)
    tasks = models.JSONField(default=list, help_text="Task names this worker can run.")
    concurrency = models.PositiveIntegerField()
    state = models.CharField(max_length=20, choices=State.choices, default=State.RUNNING)
    started_at = models.DateTimeField(db_default=Now())
    last_heartbeat_at = models.DateTimeField(db_default=Now())
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["state", "last_heartbeat_at"], name="worker_state_idx")]

    def __str__(self) -> str:
        return self.name


class Execution(models.Model):
    """One attempt of a job: who ran it, when, and how it ended."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="executions")
    attempt = models.PositiveIntegerField()
    lease_token = models.BigIntegerField()
    worker = models.ForeignKey(
        Worker, null=True, blank=True, on_delete=models.SET_NULL, related_name="executions"
    )
    started_at = models.DateTimeField(db_default=Now())
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(
        max_length=20, choices=Outcome.choices, null=True, blank=True,
        help_text="Empty while the attempt runs.",
    )
    output = models.JSONField(null=True, blank=True)
    error_type = models.CharField(max_length=255, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    # A worker that lost its lease may still report later; its report is kept here, rejected.
    late_outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True, default="")
    late_reported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job_id", "id"]
        indexes = [
            models.Index(fields=["started_at"], name="execution_started_idx"),
            models.Index(fields=["outcome", "-finished_at"], name="execution_outcome_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["job", "lease_token"], name="execution_delivery_uniq"),
            models.CheckConstraint(
                condition=Q(outcome__isnull=True) | Q(finished_at__isnull=False),
                name="execution_finished_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"job #{self.job_id} attempt {self.attempt} ({self.outcome or 'running'})"

    @property
    def duration(self) -> float | None:
        if self.finished_at is None or self.started_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class DeadLetter(models.Model):
    """A job that needs an operator: why it landed here, and how it was resolved."""

    class Reason(models.TextChoices):
        EXHAUSTED = "exhausted"  # every allowed attempt failed
        NOT_RETRYABLE = "not_retryable"  # the error is declared permanent
        LOST = "lost"  # the last allowed attempt was lost (worker died, lease expired)

    class Resolution(models.TextChoices):
        RETRIED = "retried"  # sent back to the queue
        DISCARDED = "discarded"  # acknowledged as given up

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="dead_letters")
    reason = models.CharField(max_length=20, choices=Reason.choices)
    error_type = models.CharField(max_length=255, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField()
    created_at = models.DateTimeField(db_default=Now())
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=20, choices=Resolution.choices, blank=True, default="")
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution_note = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["-id"], name="deadletter_open_idx", condition=Q(resolved_at__isnull=True)
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(resolved_at__isnull=True, resolution="")
                | Q(resolved_at__isnull=False) & ~Q(resolution=""),
                name="deadletter_resolution_complete",
            ),
        ]

    def __str__(self) -> str:
        return f"dead letter for job #{self.job_id} ({self.reason})"


class QueuePause(models.Model):
    """A paused queue: workers claim none of its jobs until the row is removed (resume).
    Jobs already running finish; enqueueing still works."""

    queue = models.CharField(max_length=100, unique=True)
    paused_at = models.DateTimeField(db_default=Now())
    paused_by = models.CharField(max_length=200, blank=True, default="")
    reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["queue"]

    def __str__(self) -> str:
        return f"{self.queue} (paused)"
