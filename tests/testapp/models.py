from django.db import models
from django.db.models.functions import Now


class Ledger(models.Model):
    """What handlers really did, written by the handlers themselves: the ground truth that
    tests compare the queue's own records against."""

    job_id = models.BigIntegerField(null=True)
    attempt = models.IntegerField(null=True)
    event = models.CharField(max_length=50)
    key = models.CharField(max_length=100, blank=True, default="")
    pid = models.IntegerField()
    at = models.DateTimeField(db_default=Now())

    def __str__(self) -> str:
        return f"job {self.job_id} attempt {self.attempt}: {self.event}"


class Switch(models.Model):
    """A flag a test flips to change how a task behaves (e.g. "the bug is fixed now")."""

    name = models.CharField(max_length=50, unique=True)

    def __str__(self) -> str:
        return self.name
