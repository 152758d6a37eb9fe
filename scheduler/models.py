"""Workflow definitions (immutable versions), runs and their steps, schedules and firings.

Rows change only through `scheduler.engine` (runs, steps), `scheduler.definitions.sync`
(definitions) and `scheduler.firing` (schedules, firings); these classes name states and serve
reads. Jobs are created and cancelled through `queues`' public API; a step only points at its job.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now


class WorkflowDefinition(models.Model):
    """One version of one workflow, exactly as validated from its file. Never updated."""

    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    description = models.TextField(blank=True, default="")
    spec = models.JSONField(help_text="The validated definition, normalised.")
    content_hash = models.CharField(max_length=64, help_text="sha256 of the canonical spec.")
    source_file = models.CharField(max_length=500, blank=True, default="")
    source_text = models.TextField(blank=True, default="", help_text="The file as applied.")
    git_commit = models.CharField(max_length=40, blank=True, default="")
    created_by = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="workflowdef_version_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("Workflow definitions are immutable; apply a new version instead")
        super().save(*args, **kwargs)


class RunState(models.TextChoices):
    SCHEDULED = "scheduled"  # created, waiting to start (a queued schedule firing)
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"


RUN_ACTIVE_STATES = (RunState.SCHEDULED, RunState.RUNNING)
RUN_TERMINAL_STATES = (RunState.SUCCESS, RunState.FAILED, RunState.CANCELLED)


class WorkflowRun(models.Model):
    definition = models.ForeignKey(
        WorkflowDefinition, on_delete=models.PROTECT, related_name="runs",
        help_text="The version this run is pinned to.",
    )
    input = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=20, choices=RunState.choices, default=RunState.RUNNING)
    triggered_by = models.CharField(max_length=200, blank=True, default="",
                                    help_text="Who or what started it.")
    schedule = models.ForeignKey("Schedule", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="runs")
    error = models.TextField(blank=True, default="", help_text="Why the run failed.")
    reruns = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(db_default=Now())
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["state", "-id"], name="wfrun_state_idx"),
            models.Index(fields=["definition", "-id"], name="wfrun_def_idx"),
            models.Index(fields=["schedule", "-id"], name="wfrun_schedule_idx"),
            # The failed-run alert detector reads the runs that failed lately.
            models.Index(fields=["finished_at"], name="wfrun_failed_idx",
                         condition=Q(state="failed")),
        ]

    def __str__(self) -> str:
        return f"run #{self.pk} of {self.definition_id and self.definition}"

    @property
    def is_finished(self) -> bool:
        return self.state in RUN_TERMINAL_STATES


class StepState(models.TextChoices):
    PENDING = "pending"  # waiting for its dependencies
    RUNNING = "running"  # its job is queued or running
    SUCCESS = "success"
    FAILED = "failed"  # its job was dead-lettered (retries exhausted) or it could not start
    SKIPPED = "skipped"  # its condition was false, or everything it needs was skipped
    CANCELLED = "cancelled"  # the run was cancelled or failed before it could finish


STEP_DONE_STATES = (StepState.SUCCESS, StepState.FAILED, StepState.SKIPPED, StepState.CANCELLED)


class StepRun(models.Model):
    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="steps")
    step_id = models.CharField(max_length=100)
    group = models.CharField(max_length=100, blank=True, default="")
    task = models.CharField(max_length=200)
    state = models.CharField(max_length=20, choices=StepState.choices,
                             default=StepState.PENDING)
    job = models.ForeignKey("queues.Job", null=True, blank=True, on_delete=models.SET_NULL,
                            related_name="+", help_text="The step's latest job.")
    attempt = models.PositiveIntegerField(default=0, help_text="Times started (reruns add one).")
    input = models.JSONField(null=True, blank=True, help_text="Resolved keyword arguments.")
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "step_id"], name="steprun_step_uniq"),
        ]
        indexes = [
            models.Index(fields=["job"], name="steprun_job_idx"),
            models.Index(fields=["state"], name="steprun_running_idx",
                         condition=Q(state="running")),
        ]

    def __str__(self) -> str:
        return f"{self.step_id} ({self.state})"


class Schedule(models.Model):
    class Kind(models.TextChoices):
        CRON = "cron"
        INTERVAL = "interval"

    class Target(models.TextChoices):
        WORKFLOW = "workflow"
        TASK = "task"

    class Misfire(models.TextChoices):
        SKIP = "skip", "skip missed times"
        RUN_ONCE = "run_once", "run once for all missed times"

    class Overlap(models.TextChoices):
        ALLOW = "allow", "allow"
        SKIP = "skip", "skip while the previous run is active"
        QUEUE = "queue", "queue until the previous run ends"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CRON)
    cron = models.CharField(max_length=200, blank=True, default="")
    interval = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds.")
    timezone = models.CharField(max_length=64, default="UTC")
    target_kind = models.CharField(max_length=10, choices=Target.choices)
    target = models.CharField(max_length=200, help_text="Workflow name or task name.")
    input = models.JSONField(default=dict, blank=True,
                             help_text="Workflow input, or the task's keyword arguments.")
    enabled = models.BooleanField(default=True)
    misfire_policy = models.CharField(max_length=10, choices=Misfire.choices,
                                      default=Misfire.RUN_ONCE)
    misfire_grace = models.PositiveIntegerField(
        default=60, help_text="Seconds late a firing may be and still count as on time.")
    overlap_policy = models.CharField(max_length=10, choices=Overlap.choices,
                                      default=Overlap.ALLOW)
    jitter = models.PositiveIntegerField(default=0, help_text="Up to this many seconds late, "
                                         "fixed per firing time, to spread load.")
    next_fire_at = models.DateTimeField(null=True, blank=True)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=500, blank=True, default="",
                              help_text="The workflow file that declares it, if any.")
    created_at = models.DateTimeField(db_default=Now())
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(fields=["next_fire_at"], name="schedule_due_idx",
                         condition=Q(enabled=True)),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="cron") & ~Q(cron=""))
                | (Q(kind="interval") & Q(interval__gt=0)),
                name="schedule_has_timing",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def timing(self) -> str:
        return self.cron if self.kind == self.Kind.CRON else f"every {self.interval}s"


class Firing(models.Model):
    """One due time of one schedule: fired, missed, skipped or queued. Unique per time, so a
    time can never fire twice, whichever scheduler gets there first."""

    class Outcome(models.TextChoices):
        FIRED = "fired"
        MISSED = "missed"  # the scheduler was down past the grace; the misfire policy skipped it
        SKIPPED = "skipped"  # overlap policy: the previous run was still active
        QUEUED = "queued"  # overlap policy: waits for the previous run to end
        BACKFILLED = "backfilled"  # fired later by a backfill
        FAILED = "failed"  # could not start (unknown workflow, invalid input ...); see note

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="firings")
    due_at = models.DateTimeField(help_text="The time the schedule was due (before jitter).")
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    fired_at = models.DateTimeField(null=True, blank=True)
    run = models.ForeignKey(WorkflowRun, null=True, blank=True, on_delete=models.SET_NULL,
                            related_name="+")
    job = models.ForeignKey("queues.Job", null=True, blank=True, on_delete=models.SET_NULL,
                            related_name="+")
    note = models.CharField(max_length=500, blank=True, default="")
    recorded_by = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["-due_at"]
        constraints = [
            models.UniqueConstraint(fields=["schedule", "due_at"], name="firing_once_uniq"),
        ]
        indexes = [
            models.Index(fields=["schedule", "outcome", "due_at"], name="firing_outcome_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.schedule_id}@{self.due_at:%Y-%m-%d %H:%M:%S} {self.outcome}"


class SchedulerLease(models.Model):
    """The leader lease: the scheduler holding an unexpired row fires schedules."""

    name = models.CharField(max_length=50, primary_key=True)
    holder = models.CharField(max_length=200, blank=True, default="")
    expires_at = models.DateTimeField(null=True, blank=True)
    acquired_at = models.DateTimeField(null=True, blank=True)
    last_tick_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name}: {self.holder or 'nobody'}"


# Alert channels, deliveries and the detectors' memory live with the alert code.
from scheduler.alerts.models import (  # noqa: E402, F401
    AlertChannel,
    AlertCursor,
    AlertDelivery,
    AlertState,
)
