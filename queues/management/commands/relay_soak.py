"""`manage.py relay_soak --minutes 10 --rate 200 --workers 1`: is worker memory flat?

Starts real `relay_worker` processes on a private queue, enqueues a steady load (`--rate` jobs/s,
every 20th one failing into dead_letter so the error path runs too) and every
`--sample-every` seconds reads the resident set size of each worker's supervisor and of its
handler processes from /proc. The first `--warmup` seconds (default: a fifth of the run, at
most 2 minutes) fill caches and pools and are not judged. The verdict compares the mean of
the first 3 samples after warm-up with the mean of the last 3: PASS when neither the
supervisors nor the handlers grew by 10 % or more. Not part of CI: it takes minutes.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count

from queues import enqueue_many
from queues.bench import workers as bench_workers
from queues.bench.workers import MIX_TASK
from queues.models import ACTIVE_STATES, Job, JobState

QUEUE = "relay-soak"
FAIL_EVERY = 20  # every 20th job raises: 5 %
TICK = 0.05  # seconds between enqueue batches
MAX_GROWTH = 10.0  # percent
JUDGED_SAMPLES = 3  # averaged at each end of the judged window
DELETE_BATCH = 5000


class Command(BaseCommand):
    help = "Run workers under a steady load for minutes and check that their memory stays flat."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--minutes", type=float, default=10.0)
        parser.add_argument("--rate", type=float, default=200.0, help="Jobs enqueued per second.")
        parser.add_argument("--workers", type=int, default=1)
        parser.add_argument("--concurrency", type=int, default=None,
                            help="Handler processes per worker (default: CPU count).")
        parser.add_argument("--sample-every", type=float, default=10.0, help="Seconds.")
        parser.add_argument("--warmup", type=float, default=None,
                            help="Seconds not judged (default: a fifth of the run, at most 120).")
        parser.add_argument("--json", default=None, help="Also write the results to this file.")

    def handle(self, *args, minutes: float, rate: float, workers: int,
               concurrency: int | None, sample_every: float, warmup: float | None,
               json: str | None, **options) -> None:
        duration = minutes * 60
        if duration <= 0 or rate <= 0 or workers < 1 or sample_every <= 0:
            raise CommandError("--minutes, --rate, --workers and --sample-every must be > 0")
        warmup = min(120.0, duration / 5) if warmup is None else warmup
        if warmup >= duration:
            raise CommandError("--warmup must be shorter than the run")
        concurrency = concurrency or os.cpu_count() or 1
        self.stdout.write(
            f"relay_soak: {duration:.0f}s at {rate:g} jobs/s, {workers} worker(s) x "
            f"{concurrency} handlers, warm-up {warmup:.0f}s, a sample every {sample_every:g}s, "
            f"DEBUG={settings.DEBUG}")
        if settings.DEBUG:
            self.stdout.write(self.style.WARNING(
                "DEBUG is on: Django keeps each connection's last 9,000 queries in memory, so "
                "workers grow until that log is full; judge memory with DEBUG=0 as deployed."))
        _delete_jobs()
        try:
            procs = bench_workers.start(QUEUE, workers, concurrency)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None
        try:
            samples = self._soak(procs, duration, rate, sample_every)
            if any(p.poll() is not None for p in procs):
                raise CommandError("a worker exited during the soak")
        finally:
            bench_workers.stop(procs)
            counts = _counts()
            _delete_jobs()
        verdict = _verdict(samples, warmup)
        self.stdout.write(
            f"jobs: {sum(counts.values()):,} enqueued, {counts.get(JobState.SUCCESS, 0):,} "
            f"success, {counts.get(JobState.DEAD_LETTER, 0):,} dead_letter, "
            f"{sum(n for s, n in counts.items() if s in ACTIVE_STATES):,} unfinished at stop")
        line = (f"verdict: RSS after warm-up {verdict['rss_after_warmup_mb']:.1f} MB, at end "
                f"{verdict['rss_at_end_mb']:.1f} MB, growth {verdict['growth_pct']:+.1f} % "
                f"(supervisors {verdict['supervisor_growth_pct']:+.1f} %, handlers "
                f"{verdict['handlers_growth_pct']:+.1f} %): "
                f"{'PASS' if verdict['passed'] else 'FAIL'} (< {MAX_GROWTH:g} %)")
        style = self.style.SUCCESS if verdict["passed"] else self.style.ERROR
        self.stdout.write(style(line))
        if json:
            Path(json).write_text(_json_dump({
                "minutes": minutes, "rate": rate, "debug": settings.DEBUG, "workers": workers,
                "concurrency": concurrency, "warmup_s": warmup, "samples": samples,
                "jobs": {str(state): n for state, n in counts.items()}, "verdict": verdict,
            }))

    def _soak(self, procs: list, duration: float, rate: float,
              sample_every: float) -> list[dict]:
        self.stdout.write(f"{'t (s)':>7} {'enqueued':>9} {'finished':>9} {'supervisors MB':>15} "
                          f"{'handlers MB':>12} {'handlers':>9}")
        samples: list[dict] = []
        enqueued = 0
        started = time.monotonic()
        next_sample = started + sample_every
        while (now := time.monotonic()) - started < duration:
            due = int((now - started) * rate) - enqueued
            if due > 0:
                enqueue_many(MIX_TASK, ({"fail": (enqueued + i) % FAIL_EVERY == FAIL_EVERY - 1}
                                        for i in range(due)), queue=QUEUE)
                enqueued += due
            if now >= next_sample:
                samples.append(self._sample(procs, now - started, enqueued))
                next_sample += sample_every
            time.sleep(TICK)
        samples.append(self._sample(procs, time.monotonic() - started, enqueued))
        return samples

    def _sample(self, procs: list, elapsed: float, enqueued: int) -> dict:
        supervisors = sum(bench_workers.rss_kb(p.pid) for p in procs)
        handler_pids = [c for p in procs for c in bench_workers.children(p.pid)]
        handlers = sum(bench_workers.rss_kb(pid) for pid in handler_pids)
        finished = Job.objects.filter(queue=QUEUE).exclude(state__in=ACTIVE_STATES).count()
        sample = {"t": round(elapsed, 1), "enqueued": enqueued, "finished": finished,
                  "supervisors_kb": supervisors, "handlers_kb": handlers,
                  "handlers": len(handler_pids)}
        self.stdout.write(f"{elapsed:7.0f} {enqueued:9,} {finished:9,} {supervisors / 1024:15.1f} "
                          f"{handlers / 1024:12.1f} {len(handler_pids):9}")
        return sample


def _verdict(samples: list[dict], warmup: float) -> dict:
    judged = [s for s in samples if s["t"] >= warmup] or samples[-1:]
    n = min(JUDGED_SAMPLES, max(1, len(judged) // 2))
    first, last = judged[:n], judged[-n:]

    def mean(window: list[dict], *keys: str) -> float:
        return statistics.mean(sum(s[k] for k in keys) for s in window) / 1024

    def growth(*keys: str) -> float:
        before = mean(first, *keys)
        return (mean(last, *keys) - before) / before * 100 if before else 0.0

    both = ("supervisors_kb", "handlers_kb")
    supervisor, handlers = growth("supervisors_kb"), growth("handlers_kb")
    return {
        "rss_after_warmup_mb": round(mean(first, *both), 1),
        "rss_at_end_mb": round(mean(last, *both), 1),
        "growth_pct": round(growth(*both), 2),
        "supervisor_growth_pct": round(supervisor, 2),
        "handlers_growth_pct": round(handlers, 2),
        "passed": supervisor < MAX_GROWTH and handlers < MAX_GROWTH,
    }


def _counts() -> dict[str, int]:
    return dict(Job.objects.filter(queue=QUEUE).values_list("state").annotate(n=Count("id")))


def _delete_jobs() -> None:
    """Delete the soak's jobs (and, by cascade, their executions) in bounded batches."""
    jobs = Job.objects.filter(queue=QUEUE)
    while ids := list(jobs.values_list("id", flat=True)[:DELETE_BATCH]):
        Job.objects.filter(id__in=ids).delete()


def _json_dump(data: dict) -> str:
    return json.dumps(data, indent=2) + "\n"
