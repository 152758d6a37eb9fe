"""`manage.py relay_status [--json] [--queue NAME ...] [--require-scheduler] [--max-lag S]`

Prints workers, queues, the scheduler leader and lag, and exits non-zero when Relay is
unhealthy, for liveness probes and cron checks. Exit codes: 0 healthy; 1 unhealthy (the
problems are printed); 2 the database could not be read, or the options are wrong.
"""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, InterfaceError

from scheduler import status as health

UNHEALTHY = 1
UNREACHABLE = 2  # also: wrong options, as argparse does


class Command(BaseCommand):
    help = ("Show workers, queues and the scheduler leader; exit 1 when unhealthy (no live "
            "worker, or due jobs in a queue no live worker serves, plus the optional checks), "
            "2 when the database cannot be read.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", dest="as_json",
                            help="Print one JSON document.")
        parser.add_argument("--queue", action="append", dest="queues", metavar="NAME",
                            help="Judge only this queue (repeatable): a live worker must serve "
                                 "one of them.")
        parser.add_argument("--require-scheduler", action="store_true",
                            help="Unhealthy when no relay_scheduler holds the leader lease.")
        parser.add_argument("--max-lag", type=float, default=None, metavar="SECONDS",
                            help="Unhealthy when an unpaused queue's longest-due job has "
                                 "waited longer than this.")

    def handle(self, *args, as_json: bool, queues: list[str] | None, require_scheduler: bool,
               max_lag: float | None, **options) -> None:
        if max_lag is not None and max_lag < 0:
            raise CommandError("--max-lag must be >= 0", returncode=UNREACHABLE)
        try:
            status = health.read()
        except (DatabaseError, InterfaceError) as exc:
            reason = (str(exc).strip().splitlines() or [""])[0]
            self.stderr.write(f"relay_status: the database could not be read: "
                              f"{type(exc).__name__}: {reason}")
            sys.exit(UNREACHABLE)
        problems = health.problems(status, queues=queues, require_scheduler=require_scheduler,
                                   max_lag=max_lag)
        if as_json:
            self.stdout.write(_as_json(status, problems))
        else:
            self.stdout.write(_as_text(status, problems))
        if problems:
            sys.exit(UNHEALTHY)


def _as_text(status: health.Status, problems: list[health.Problem]) -> str:
    lines = [f"Workers: {status.workers_alive} alive, {status.workers_stale} stale"]
    for w in status.workers:
        lines.append(f"  {'alive' if w.alive else 'STALE'}  {w.name}  pid {w.pid} on {w.host}  "
                     f"{w.state}  heartbeat {health.span(w.heartbeat_age)} ago  "
                     f"queues {','.join(w.queues) or '-'}  concurrency {w.concurrency}")
    lines.append(f"Queues: {len(status.queues)}")
    for q in status.queues:
        lag = f"lag {health.span(q.oldest_due_age)}" if q.has_due_jobs else "nothing due"
        lines.append(f"  {q.name}  waiting {q.waiting}  running {q.running}  {lag}  "
                     f"workers {q.workers}" + ("  PAUSED" if q.paused else ""))
    lease = status.scheduler
    tick = (f"last tick {health.span(lease.last_tick_age)} ago" if lease.last_tick_at
            else "never ticked")
    if lease.live:
        lines.append(f"Scheduler: leader {lease.holder}, {tick}")
    elif lease.holder:
        lines.append(f"Scheduler: NO LEADER (last leader {lease.holder}, {tick})")
    else:
        lines.append("Scheduler: never run")
    if problems:
        lines.append("UNHEALTHY:")
        lines += [f"  {p.code}: {p.message}" for p in problems]
    else:
        lines.append("OK")
    return "\n".join(lines)


def _as_json(status: health.Status, problems: list[health.Problem]) -> str:
    lease = status.scheduler
    return json.dumps({
        "healthy": not problems,
        "problems": [{"code": p.code, "message": p.message, "queue": p.queue or None}
                     for p in problems],
        "now": status.now.isoformat(),
        "workers": {
            "alive": status.workers_alive, "stale": status.workers_stale,
            "list": [{"name": w.name, "host": w.host, "pid": w.pid, "state": w.state,
                      "alive": w.alive, "heartbeat_age": round(w.heartbeat_age, 3),
                      "queues": w.queues, "concurrency": w.concurrency}
                     for w in status.workers],
        },
        "queues": [{"name": q.name, "waiting": q.waiting, "running": q.running,
                    "paused": q.paused, "workers": q.workers,
                    "lag": None if q.oldest_due_age is None else round(q.oldest_due_age, 3)}
                   for q in status.queues],
        "scheduler": {
            "leader": lease.holder if lease.live else None, "last_leader": lease.holder or None,
            "last_tick_at": lease.last_tick_at.isoformat() if lease.last_tick_at else None,
            "last_tick_age": (None if lease.last_tick_age is None
                              else round(lease.last_tick_age, 3)),
        },
    }, indent=2)

