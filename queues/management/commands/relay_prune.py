"""`manage.py relay_prune --older-than 30d [--keep-failed] [--batch-size 1000] [--dry-run]`"""

from __future__ import annotations

import re
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser

from queues import store
from queues.models import Job, JobState

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str) -> timedelta:
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text or "")
    if not match:
        raise CommandError(f"--older-than must look like 30d, 12h, 90m or 3600s, not {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


class Command(BaseCommand):
    help = ("Delete finished jobs (with their executions and dead letters) older than an age, "
            "in small batches that never hold up workers. Waiting and running jobs are kept.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", required=True, help="Age such as 30d, 12h, 90m.")
        parser.add_argument("--keep-failed", action="store_true",
                            help="Keep dead-lettered jobs; delete only successes and cancels.")
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument("--pause", type=float, default=0.0,
                            help="Seconds to wait between batches.")
        parser.add_argument("--dry-run", action="store_true", help="Count, delete nothing.")

    def handle(self, *args, older_than: str, keep_failed: bool, batch_size: int, pause: float,
               dry_run: bool, **options) -> None:
        age = parse_age(older_than)
        if not 1 <= batch_size <= 50_000:
            raise CommandError("--batch-size must be between 1 and 50000")
        if pause < 0:
            raise CommandError("--pause must be >= 0")
        if dry_run:
            from django.utils import timezone

            states = [JobState.SUCCESS, JobState.CANCELLED]
            if not keep_failed:
                states.append(JobState.DEAD_LETTER)
            count = Job.objects.filter(state__in=states,
                                       finished_at__lt=timezone.now() - age).count()
            self.stdout.write(f"Would delete {count} finished job(s) older than {older_than}.")
            return
        report = store.prune(older_than=age, keep_failed=keep_failed, batch_size=batch_size,
                             pause=pause)
        self.stdout.write(
            f"Deleted {report.jobs} finished job(s) older than {older_than} in "
            f"{report.batches} batch(es); longest batch {report.longest_batch * 1000:.0f} ms."
        )
