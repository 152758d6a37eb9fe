"""Alert rows: channels (where alerts go), deliveries (the outbox), and the detectors' memory.

Detectors write deliveries in the same transaction that moves their cursor or window, so an
alert is neither lost nor raised twice when a scheduler dies mid-tick. A delivery is one alert
for one channel; the sender works through due deliveries and records every try.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now


class Event(models.TextChoices):
    DEAD_LETTER = "dead_letter", "a job was dead-lettered"
    RUN_FAILED = "run_failed", "a workflow run failed"
    QUEUE_BACKLOG = "queue_backlog", "a queue's oldest due job waits too long"
    NO_WORKER = "no_worker", "no live worker serves a queue with due jobs"
    SCHEDULER_STALLED = "scheduler_stalled", "the scheduler stopped ticking"


class AlertChannel(models.Model):
    """A receiver for alerts. Channels may also be declared in RELAY["ALERT_CHANNELS"]."""

    class Kind(models.TextChoices):
        WEBHOOK = "webhook", "JSON webhook"
        SLACK = "slack", "Slack-compatible webhook"
        EMAIL = "email", "email (Django's mail settings)"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.WEBHOOK)
    url = models.URLField(max_length=1000, blank=True, default="",
                          help_text="Webhook address (webhook and Slack channels). It may hold "
                                    "a token: only users who may change channels see it.")
    recipients = models.TextField(blank=True, default="",
                                  help_text="Email addresses, one per line or comma-separated.")
    events = models.JSONField(default=list, blank=True,
                              help_text="Event kinds this channel receives; empty: all.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(db_default=Now())
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AlertDelivery(models.Model):
    """One alert for one channel: what it says, and every try to deliver it."""

    class State(models.TextChoices):
        PENDING = "pending"  # waiting for its next try at next_attempt_at
        DELIVERED = "delivered"  # the receiver accepted it
        FAILED = "failed"  # every allowed try failed; see last_error
        DROPPED = "dropped"  # its channel was removed or disabled before it could be sent

    event = models.CharField(max_length=30)
    channel = models.CharField(max_length=100, help_text="The channel's name.")
    dedup_key = models.CharField(max_length=500,
                                 help_text="One delivery per channel and key, however often "
                                           "the detector runs.")
    subject = models.CharField(max_length=320, blank=True, default="")
    title = models.CharField(max_length=500)
    payload = models.JSONField(help_text="The JSON a webhook receives.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(help_text="Also the claim: a sender pushes it ahead "
                                                     "while it tries.")
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(db_default=Now())
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "alert deliveries"
        constraints = [
            models.UniqueConstraint(fields=["channel", "dedup_key"], name="alertdelivery_once"),
        ]
        indexes = [
            models.Index(fields=["next_attempt_at"], name="alertdelivery_due_idx",
                         condition=Q(state="pending")),
        ]

    def __str__(self) -> str:
        return f"{self.title} -> {self.channel} ({self.state})"


class AlertState(models.Model):
    """What has been said about one subject of one event kind.

    Events (dead letters, failed runs) open a window: the first is announced, the rest are
    counted in `folded` and summarised when the window ends. Conditions (backlog, no worker,
    stalled scheduler) are firing from `firing_since` until they clear. The subject "*" of a
    kind holds that kind's per-window budget and whatever overflowed it.
    """

    kind = models.CharField(max_length=30)
    subject = models.CharField(max_length=320)  # queue (100) + "/" + task (200)
    window_start = models.DateTimeField(null=True, blank=True)
    announced = models.PositiveIntegerField(default=0,
                                            help_text="Alerts started in this window.")
    folded = models.PositiveIntegerField(default=0,
                                         help_text="Events in this window not yet announced.")
    sample = models.JSONField(null=True, blank=True,
                              help_text="The latest folded event, or counts per subject.")
    firing_since = models.DateTimeField(null=True, blank=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["kind", "subject"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "subject"], name="alertstate_subject_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject}"


class AlertCursor(models.Model):
    """How far a detector has read. Locked while it reads, so two schedulers that both believe
    they lead (for a moment) never announce the same rows twice."""

    name = models.CharField(max_length=50, primary_key=True)
    position = models.BigIntegerField(default=0, help_text="The last id read.")
    # Ids below `position` not seen yet (their transaction had not committed): id -> first
    # missed (Unix time). Given up after GAP_WAIT: a rolled-back insert never shows up.
    gaps = models.JSONField(default=dict, blank=True)
    seen = models.JSONField(default=dict, blank=True,
                            help_text="Recently announced rows, for time-based detectors.")
    checked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.position}"
