"""The control plane's own rows: the audit log, role scopes, background bulk operations, and
the custom permissions the roles are made of.

The dashboard changes jobs, runs and schedules only through `queues` and `scheduler`
public functions (see `dashboard.actions`); these rows record who did what.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models.functions import Now


class ControlPlane(models.Model):
    """No table: holds the custom permissions that roles grant (see dashboard.roles)."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_dashboard", "Can view the Relay dashboard"),
            ("trigger", "Can trigger workflows and tasks"),
            ("rerun", "Can rerun jobs and workflow runs"),
            ("cancel", "Can cancel jobs and workflow runs"),
            ("retry", "Can retry failed and dead-lettered jobs"),
            ("discard", "Can discard dead letters"),
            ("pause", "Can pause and resume queues and schedules"),
            ("manage_schedules", "Can manage schedules"),
            ("manage_definitions", "Can manage workflow definitions"),
        ]

    def __str__(self) -> str:
        return "Relay control plane"


class AuditQuerySet(models.QuerySet):
    """Append-only: rows are inserted, never changed or removed."""

    def update(self, **kwargs):
        raise PermissionError("The audit log is append-only")

    def delete(self):
        raise PermissionError("The audit log is append-only")


class AuditEntry(models.Model):
    """One operator action: who, when, what, on which objects, why, from where."""

    at = models.DateTimeField(db_default=Now(), db_index=True)
    # Plain columns, not a foreign key: deleting a user must not touch (or lose) the record.
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor = models.CharField(max_length=150, help_text="Username at the time of the action.")
    action = models.CharField(max_length=50, db_index=True, help_text="e.g. job.retry")
    object_type = models.CharField(max_length=30)
    object_ids = models.JSONField(default=list, blank=True)
    count = models.PositiveIntegerField(default=1, help_text="Objects the action applied to.")
    reason = models.TextField(blank=True, default="")
    ip = models.GenericIPAddressField(null=True, blank=True)
    source = models.CharField(max_length=20, default="dashboard",
                              help_text="dashboard, admin or api")
    details = models.JSONField(default=dict, blank=True,
                               help_text="What changed; secrets are masked.")

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["object_type", "-id"], name="audit_object_idx")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise PermissionError("The audit log is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("The audit log is append-only")


class RoleScope(models.Model):
    """Limits a group's role to some queues and workflows. A group without a scope acts on
    everything its permissions allow."""

    class Others(models.TextChoices):
        READ = "read", "see other work read-only"
        HIDDEN = "hidden", "do not see other work"

    group = models.OneToOneField(Group, on_delete=models.CASCADE, related_name="relay_scope")
    queues = models.JSONField(default=list, blank=True, help_text="Queue names.")
    workflows = models.JSONField(default=list, blank=True, help_text="Workflow names.")
    others = models.CharField(max_length=10, choices=Others.choices, default=Others.READ)

    def __str__(self) -> str:
        return f"scope of {self.group}"


class BulkOperation(models.Model):
    """A bulk action on every job matching a filter, run in the background at a bounded
    rate. The filter is frozen with an id bound when the operator confirms, so jobs that
    match later are not touched."""

    class State(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    action = models.CharField(max_length=20, help_text="retry, discard or cancel")
    filter = models.JSONField(help_text="The job filter, as in the page's URL.")
    max_job_id = models.BigIntegerField(help_text="Only jobs up to this id are touched.")
    reason = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(db_default=Now())
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    expected = models.PositiveIntegerField(default=0, help_text="Matches counted at confirm.")
    done = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    cursor = models.BigIntegerField(default=0, help_text="Highest job id processed.")
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"bulk {self.action} #{self.pk} ({self.state})"
