"""`manage.py relay_worker --queues a,b --concurrency N [--burst]`"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from queues.conf import default_concurrency, relay_settings
from queues.registry import QUEUE_NAME_RE
from queues.worker import Worker


class Command(BaseCommand):
    help = "Run a Relay worker: claim due jobs from the given queues and run their handlers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queues", default=None,
            help="Comma-separated queues to serve (default: RELAY['DEFAULT_QUEUE']).",
        )
        parser.add_argument(
            "--concurrency", type=int, default=None,
            help="Handler processes (default: RELAY['WORKER_CONCURRENCY'] or the CPU count).",
        )
        parser.add_argument(
            "--burst", action="store_true",
            help="Exit with status 0 once no due job is left (for batch runs and tests).",
        )
        parser.add_argument("--name", default=None, help="Worker name (default host:pid).")

    def handle(self, *args, queues: str | None, concurrency: int | None, burst: bool,
               name: str | None, **options) -> None:
        names = [q.strip() for q in (queues or relay_settings().DEFAULT_QUEUE).split(",")]
        bad = [q for q in names if not QUEUE_NAME_RE.match(q)]
        if bad or not names:
            raise CommandError(f"invalid queue name(s): {', '.join(map(repr, bad)) or '(none)'}")
        count = default_concurrency() if concurrency is None else concurrency
        if count < 1:
            raise CommandError("--concurrency must be at least 1")
        Worker(queues=list(dict.fromkeys(names)), concurrency=count, burst=burst,
               name=name).run()
