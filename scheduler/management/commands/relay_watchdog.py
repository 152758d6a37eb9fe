"""`manage.py relay_watchdog [--interval 30] [--once]`"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser

from scheduler.alerts.watchdog import INTERVAL, Watchdog


class Command(BaseCommand):
    help = ("Alert when the scheduler stops ticking, and deliver due alerts. Run it apart from "
            "the scheduler (another machine, cron with --once, or a sidecar).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval", type=float, default=INTERVAL,
                            help=f"Seconds between checks (default {INTERVAL:.0f}).")
        parser.add_argument("--once", action="store_true",
                            help="Check once, deliver what is due, and exit (for cron).")

    def handle(self, *args, interval: float, once: bool, **options) -> None:
        if interval <= 0:
            raise CommandError("--interval must be > 0")
        code = Watchdog(interval=interval).run(once=once)
        if code:
            sys.exit(code)
