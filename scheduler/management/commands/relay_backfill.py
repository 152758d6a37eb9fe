"""`manage.py relay_backfill SCHEDULE --from 2026-11-01T00:00 --to 2026-11-02T00:00`"""

from __future__ import annotations

import zoneinfo
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser

from scheduler import firing
from scheduler.models import Schedule


class Command(BaseCommand):
    help = ("Fire a schedule for every due time in a past range that never ran (missed "
            "while the scheduler was down, or before the schedule existed). Times that "
            "already fired are left alone, so repeating a backfill is safe.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("schedule", help="Schedule name.")
        parser.add_argument("--from", dest="start", required=True,
                            help="ISO time; without an offset it is read in the schedule's "
                                 "time zone.")
        parser.add_argument("--to", dest="end", required=True, help="ISO time (inclusive).")
        parser.add_argument("--dry-run", action="store_true", help="List, do not fire.")

    def handle(self, *args, schedule: str, start: str, end: str, dry_run: bool,
               **options) -> None:
        found = Schedule.objects.filter(name=schedule).first()
        if found is None:
            raise CommandError(f"no schedule named {schedule!r}")
        zone = zoneinfo.ZoneInfo(found.timezone or "UTC")
        try:
            times = firing.backfill(found, _parse(start, zone), _parse(end, zone),
                                    by="relay_backfill", dry_run=dry_run)
        except firing.ScheduleError as exc:
            raise CommandError(str(exc)) from None
        verb = "Would fire" if dry_run else "Fired"
        self.stdout.write(f"{verb} {len(times)} time(s) of {found.name}:")
        for due in times:
            self.stdout.write(f"  {due.astimezone(zone).isoformat()}")


def _parse(text: str, zone: zoneinfo.ZoneInfo) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{text!r} is not an ISO date or time") from None
    return value if value.tzinfo else value.replace(tzinfo=zone)
