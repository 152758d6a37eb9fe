"""The control plane's own rows: the audit log, role scopes, background bulk operations, and
the custom permissions the roles are made of.

API tokens (`ApiToken`) live here too: the API's users are the dashboard's users, with the
same roles.

The dashboard changes jobs, runs and schedules only through `queues` and `scheduler`
public functions (see `dashboard.actions`); these rows record who did what.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

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


class ApiToken(models.Model):
    """A per-user key for the REST API, sent as `Authorization: Bearer relay_<key id>_<secret>`.

    Only a sha256 of the secret is stored: the raw token is shown once, when it is created,
    so a database dump holds nothing that authenticates. The secret is 256 random bits, so a
    fast hash is enough (nothing to brute-force). The key id is public and finds the row.
    """

    PREFIX = "relay_"
    LAST_USED_GRANULARITY = 60  # seconds: at most one write per token per minute of use

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="relay_api_tokens")
    name = models.CharField(max_length=100, help_text="What it is for, e.g. billing-sync.")
    key_id = models.CharField(max_length=16, unique=True, editable=False,
                              help_text="Public part of the token; identifies it in logs.")
    secret_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(db_default=Now())
    expires_at = models.DateTimeField(null=True, blank=True,
                                      help_text="Empty: never expires (revoke it instead).")
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.PREFIX}{self.key_id}_…)"

    @classmethod
    def issue(cls, user: Any, name: str, expires_at: Any = None) -> tuple[ApiToken, str]:
        """A new token for `user` and its raw value (shown once, never stored)."""
        token = cls(user=user, name=name, expires_at=expires_at)
        raw = token.set_secret()
        token.save(force_insert=True)
        return token, raw

    def set_secret(self) -> str:
        """Give an unsaved token its key id and secret; returns the raw token."""
        self.key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        self.secret_hash = _sha256(secret)
        return f"{self.PREFIX}{self.key_id}_{secret}"

    @classmethod
    def find(cls, raw: str) -> ApiToken | None:
        """The token `raw` names, if its secret matches (whatever its state)."""
        if not raw.startswith(cls.PREFIX):
            return None
        key_id, sep, secret = raw[len(cls.PREFIX):].partition("_")
        if not sep or not secret or len(key_id) > 16:
            return None
        token = cls.objects.select_related("user").filter(key_id=key_id).first()
        if token is None or not hmac.compare_digest(token.secret_hash, _sha256(secret)):
            return None
        return token

    def problem(self, now: Any) -> str | None:
        """Why the token cannot be used now, or None."""
        if self.revoked_at is not None:
            return f"This API token was revoked at {self.revoked_at.isoformat()}"
        if self.expires_at is not None and self.expires_at <= now:
            return f"This API token expired at {self.expires_at.isoformat()}"
        if not self.user.is_active:
            return "The user of this API token is inactive"
        return None

    def revoke(self) -> bool:
        """Refuse the token from now on; False if it was already revoked."""
        from django.utils import timezone

        now = timezone.now()
        if not ApiToken.objects.filter(pk=self.pk, revoked_at__isnull=True).update(
                revoked_at=now):
            return False
        self.revoked_at = now
        return True

    def touch(self, now: Any) -> None:
        """Record use, at most once per LAST_USED_GRANULARITY (a conditional update)."""
        stale = now - timedelta(seconds=self.LAST_USED_GRANULARITY)
        ApiToken.objects.filter(pk=self.pk).filter(
            models.Q(last_used_at__isnull=True) | models.Q(last_used_at__lt=stale)
        ).update(last_used_at=now)


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
