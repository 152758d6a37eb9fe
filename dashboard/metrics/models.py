"""Running totals behind the Prometheus counters, and how far the history has been folded in.

Rows change only through `dashboard.metrics.rollup`.
"""

from __future__ import annotations

from django.db import models


class Rollup(models.Model):
    """The one fold position (pk 1). Jobs and dead letters are folded by id, executions by
    finish time; `version` changes with every fold, so a reader can tell that totals and
    watermarks moved under it."""

    version = models.BigIntegerField(default=0)
    folded_at = models.DateTimeField(null=True, blank=True, help_text="Last fold (database clock).")
    # Jobs with id <= jobs_folded are in the totals; jobs_next is the max id seen at
    # jobs_next_at, folded once it is old enough that every lower id has committed.
    jobs_folded = models.BigIntegerField(default=0)
    jobs_next = models.BigIntegerField(null=True, blank=True)
    jobs_next_at = models.DateTimeField(null=True, blank=True)
    dead_letters_folded = models.BigIntegerField(default=0)
    dead_letters_next = models.BigIntegerField(null=True, blank=True)
    dead_letters_next_at = models.DateTimeField(null=True, blank=True)
    # Executions that finished before this time are in the totals.
    executions_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"metrics rollup v{self.version}"


class Tally(models.Model):
    """A running total for one (kind, task, queue, label): jobs enqueued, attempts that ended
    with an outcome (with their summed duration and cumulative histogram buckets), or jobs
    dead-lettered for a reason."""

    class Kind(models.TextChoices):
        ENQUEUED = "enqueued"  # label empty
        ATTEMPT = "attempt"  # label: the execution's outcome
        DEAD_LETTER = "dead_letter"  # label: the dead letter's reason

    kind = models.CharField(max_length=20, choices=Kind.choices)
    task = models.CharField(max_length=200)
    queue = models.CharField(max_length=100)
    label = models.CharField(max_length=20, blank=True, default="")
    count = models.BigIntegerField(default=0)
    # Attempts only: seconds summed, and counts at or under each bound of rollup.BUCKETS.
    seconds = models.FloatField(default=0.0)
    buckets = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "task", "queue", "label"],
                                    name="tally_key_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.task} {self.queue} {self.label}: {self.count}"
