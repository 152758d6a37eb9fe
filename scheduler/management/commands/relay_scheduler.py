"""`manage.py relay_scheduler [--interval 10] [--lease 30] [--once]`"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser

from queues.conf import relay_settings
from scheduler.service import Scheduler


class Command(BaseCommand):
    help = ("Run the scheduler: fire due schedules exactly once, advance workflow runs and "
            "redeliver expired leases. Run several for availability; one leads.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval", type=float, default=None,
                            help="Seconds between ticks (default RELAY['SCHEDULER_INTERVAL'], "
                                 "10).")
        parser.add_argument("--lease", type=float, default=None,
                            help="Seconds a silent leader keeps the lead (default "
                                 "RELAY['SCHEDULER_LEASE'], 30).")
        parser.add_argument("--once", action="store_true",
                            help="Run one tick and exit (for cron-driven setups and checks).")
        parser.add_argument("--name", default=None, help="Scheduler name (default host:pid).")

    def handle(self, *args, interval: float | None, lease: float | None, once: bool,
               name: str | None, **options) -> None:
        conf = relay_settings()
        interval = conf.SCHEDULER_INTERVAL if interval is None else interval
        lease = conf.SCHEDULER_LEASE if lease is None else lease
        if interval <= 0 or lease <= 0:
            raise CommandError("--interval and --lease must be > 0")
        if lease <= interval:
            raise CommandError("--lease must be longer than --interval, or the leader would "
                               "lose the lead between two ticks")
        code = Scheduler(interval=interval, lease=lease, name=name).run(once=once)
        if code:
            sys.exit(code)
