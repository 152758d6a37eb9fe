"""`manage.py relay_dashboard_bench [--runs 15] [--json out.json]`: how fast the dashboard
renders on the current database, server-side.

Each page is fetched in-process through `django.test.Client` as a logged-in superuser (a
throwaway `relay-dashboard-bench` user unless `--user` names one): the whole Django stack --
middleware, the view, its queries, template rendering -- without a network or a browser. One
warm-up request, then `--runs` timed requests per page; it prints median, p95 and max in ms, the
queries one request made, and PASS/FAIL against 300 ms median for the three pages the issue
names (the jobs list, a filtered search, a job detail). DEBUG is switched off in-process, as
in production (no query log, no template debug data).

The URLs are derived from the data: the filtered search uses the queue, state and a phrase of
the error message of the newest failed job; the job detail opens a dead-lettered job with two
attempts (so two executions and a traceback). Pages that answer 404 (not built yet) are listed
as skipped. `--explain` prints, for each page, the queries slower than `--slow-ms` with
PostgreSQL's EXPLAIN ANALYZE: where the time goes, and which index would help.

Seed a database first, e.g. `manage.py relay_seed --jobs 1000000 --executions-per-job 2`.
"""

from __future__ import annotations

import math
import os
import re
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings

from queues.models import DeadLetter, Execution, Job, JobState

LIMIT_MS = 300.0  # the bar: median server-side render time of the required pages
BENCH_USER = "relay-dashboard-bench"


@dataclass
class Page:
    name: str
    url: str
    required: bool = False
    status: int | None = None
    times_ms: list[float] = field(default_factory=list)
    queries: int | None = None
    bytes: int | None = None
    rows: int | None = None  # jobs linked from a jobs list: did the search find anything?
    note: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.times_ms) if self.times_ms else None

    @property
    def p95(self) -> float | None:
        if not self.times_ms:
            return None
        ordered = sorted(self.times_ms)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]  # nearest rank

    @property
    def max(self) -> float | None:
        return max(self.times_ms) if self.times_ms else None

    @property
    def verdict(self) -> str:
        if not self.required:
            return ""
        if self.median is None:
            return "FAIL"
        return "PASS" if self.median < LIMIT_MS else "FAIL"


class Command(BaseCommand):
    help = ("Time server-side rendering of the dashboard's pages (jobs list, filtered search, "
            "job detail, and every other list page) on the current database.")
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--runs", type=int, default=15, help="Timed requests per page.")
        parser.add_argument("--json", default=None, help="Also write the results to this file.")
        parser.add_argument("--user", default=None,
                            help="Log in as this existing user instead of a throwaway "
                                 "superuser.")
        parser.add_argument("--only", action="append", default=[],
                            help="Only pages whose name contains this (repeatable).")
        parser.add_argument("--explain", action="store_true",
                            help="Print each page's slow queries with EXPLAIN ANALYZE "
                                 "(PostgreSQL).")
        parser.add_argument("--slow-ms", type=float, default=20.0,
                            help="With --explain: queries slower than this (default 20 ms).")
        parser.add_argument("--check", action="store_true",
                            help="Exit with an error when a required page is over 300 ms.")

    def handle(self, *args: Any, runs: int, json: str | None, user: str | None,
               only: list[str], explain: bool, slow_ms: float, check: bool,
               **options: Any) -> None:
        if runs < 1:
            raise CommandError("--runs must be at least 1")
        counts = self._counts()
        if not counts["jobs"]:
            raise CommandError("No jobs: seed first (manage.py relay_seed --jobs 1000000).")
        pages = [p for p in self._pages() if not only or any(o in p.name for o in only)]
        account, made = self._login_user(user)
        host = (settings.ALLOWED_HOSTS or ["localhost"])[0].lstrip(".").replace("*", "") \
            or "localhost"
        client = Client(HTTP_HOST=host)
        client.force_login(account)
        try:
            with override_settings(DEBUG=False):
                for page in pages:
                    self._measure(client, page, runs)
                    if explain and page.status == 200:
                        self._explain(client, page, slow_ms)
        finally:
            client.logout()
            if made:
                account.delete()
        self._print(pages, counts, runs)
        if json:
            with open(json, "w") as out:
                import json as jsonlib

                jsonlib.dump({
                    "database": self._database(), "counts": counts, "runs": runs,
                    "load_average": _load(),
                    "limit_ms": LIMIT_MS,
                    "pages": [{**asdict(p), "median_ms": p.median, "p95_ms": p.p95,
                               "max_ms": p.max, "verdict": p.verdict} for p in pages],
                }, out, indent=2)
            self.stdout.write(f"Wrote {json}")
        failed = [p.name for p in pages if p.verdict == "FAIL"]
        if check and failed:
            raise CommandError(f"over {LIMIT_MS:.0f} ms median: {', '.join(failed)}")

    # -- what to fetch -------------------------------------------------------------------------

    def _pages(self) -> list[Page]:
        jobs = "/dashboard/jobs/"
        newest = list(Job.objects.order_by("-id").values_list("id", flat=True)[:51])
        middle = (newest[0] // 2) if newest else 1
        # The newest failed (else dead-lettered) job whose message has a phrase and a token
        # with digits: the phrase is shared by many similar failures, the token by few.
        recent = list(Job.objects.filter(state__in=[JobState.FAILED, JobState.DEAD_LETTER])
                      .exclude(last_error_message="").order_by("-id")
                      .values("id", "queue", "state", "last_error_message")[:500])
        recent.sort(key=lambda j: (j["state"] != JobState.FAILED,
                                   not _phrases(j["last_error_message"])[1], -j["id"]))
        failed = recent[0] if recent else None
        detail = next(filter(None, (
            qs.order_by("-id").values_list("id", flat=True).first() for qs in (
                Job.objects.filter(state=JobState.DEAD_LETTER, attempts=2),
                Job.objects.filter(state=JobState.FAILED, attempts=2),
                Job.objects.filter(attempts=2), Job.objects.all()))), None)
        customer = (Job.objects.filter(kwargs__has_key="customer_id").order_by("-id")
                    .values_list("kwargs", flat=True).first() or {}).get("customer_id")

        pages = [Page("jobs list", jobs, required=True)]
        if failed:
            phrase, token = _phrases(failed["last_error_message"])
            search = {"state": failed["state"], "queue": failed["queue"], "q": phrase}
            pages.append(Page(f"filtered search (state, queue, error text {phrase!r})",
                              f"{jobs}?{urlencode(search)}", required=True))
        else:
            pages.append(Page("filtered search", f"{jobs}?state=failed&q=error", required=True,
                              note="no failed job to take a phrase from"))
        pages.append(Page("job detail (2 executions, traceback)", f"{jobs}{detail}/",
                          required=True))
        if len(newest) > 50:
            pages.append(Page("jobs list, page 2 (keyset)", f"{jobs}?after={newest[49]}"))
        pages.append(Page("jobs list, deep page (keyset)", f"{jobs}?after={middle}"))
        if customer is not None:
            pages.append(Page(f"search: args.customer_id={customer}",
                              f"{jobs}?{urlencode({'arg': f'args.customer_id={customer}'})}"))
        if failed:
            pages.append(Page(f"search: error text only {phrase!r}",
                              f"{jobs}?{urlencode({'q': phrase})}"))
            if token:
                pages.append(Page(f"search: rare text {token!r}",
                                  f"{jobs}?{urlencode({'q': token})}"))
        pages += [
            Page("jobs: state=dead_letter", f"{jobs}?state=dead_letter"),
            Page("jobs: tag=vip", f"{jobs}?tag=vip"),
            Page("jobs: since=24h", f"{jobs}?since=24h"),
            Page("jobs: until=7d (older than a week)", f"{jobs}?until=7d"),
            Page("jobs: waiting, sort=run_at", f"{jobs}?state=scheduled&state=failed&sort=run_at"),
            Page("jobs: oldest first (sort=id)", f"{jobs}?sort=id"),
            Page("overview", "/dashboard/"),
            Page("queues", "/dashboard/queues/"),
            Page("workers", "/dashboard/workers/"),
            Page("dead letters", "/dashboard/dead-letters/"),
            Page("failure groups", "/dashboard/failures/"),
            Page("workflow runs", "/dashboard/runs/"),
            Page("workflow definitions", "/dashboard/workflows/"),
            Page("schedules", "/dashboard/schedules/"),
            Page("audit log", "/dashboard/audit/"),
        ]
        return pages

    # -- measuring -----------------------------------------------------------------------------

    def _measure(self, client: Client, page: Page, runs: int) -> None:
        try:
            with CaptureQueriesContext(connection) as captured:
                response = client.get(page.url)  # warm-up: caches, connection, templates
        except Exception as exc:  # noqa: BLE001 - a broken page is reported, not fatal
            page.note = f"skipped: {type(exc).__name__}: {exc}"[:160]
            return
        page.status = response.status_code
        if response.status_code == 404:
            page.note = "skipped: 404 (not built yet?)"
            return
        if response.status_code != 200:
            page.note = f"skipped: HTTP {response.status_code}"
            return
        page.queries = len(captured.captured_queries)
        page.bytes = len(response.content)
        if page.url.startswith("/dashboard/jobs/?") or page.url == "/dashboard/jobs/":
            page.rows = len(set(re.findall(rb'href="/dashboard/jobs/(\d+)/"', response.content)))
        for _ in range(runs):
            started = time.perf_counter()
            response = client.get(page.url)
            page.times_ms.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                page.note = f"HTTP {response.status_code} during the runs"
                break

    def _explain(self, client: Client, page: Page, slow_ms: float) -> None:
        with CaptureQueriesContext(connection) as captured:
            client.get(page.url)
        slow = [q for q in captured.captured_queries if float(q["time"]) * 1000 >= slow_ms]
        self.stdout.write(f"\n== {page.name}: {page.url}\n   {len(captured)} queries, "
                          f"{len(slow)} over {slow_ms:.0f} ms")
        for query in slow:
            self.stdout.write(f"\n-- {float(query['time']) * 1000:.1f} ms\n{query['sql']}")
            if connection.vendor == "postgresql" and query["sql"].lstrip().upper().startswith(
                    "SELECT"):
                with connection.cursor() as cursor:
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
                    self.stdout.write("\n".join(row[0] for row in cursor.fetchall()))

    # -- reporting -----------------------------------------------------------------------------

    def _counts(self) -> dict[str, int]:
        return {"jobs": Job.objects.count(), "executions": Execution.objects.count(),
                "dead_letters": DeadLetter.objects.count()}

    def _database(self) -> str:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SHOW server_version")
                return f"PostgreSQL {cursor.fetchone()[0].split()[0]}"
        with connection.cursor() as cursor:
            cursor.execute("SELECT sqlite_version()")
            return f"SQLite {cursor.fetchone()[0]}"

    def _print(self, pages: list[Page], counts: dict[str, int], runs: int) -> None:
        width = max(len(p.name) for p in pages)
        self.stdout.write(
            f"\nrelay_dashboard_bench: {self._database()}, {counts['jobs']:,} jobs, "
            f"{counts['executions']:,} executions, {counts['dead_letters']:,} dead letters; "
            f"{runs} timed run(s) per page after 1 warm-up; in-process django.test.Client as "
            f"a superuser, DEBUG off; load average {_load()}")
        self.stdout.write(f"{'page':<{width}}  {'median':>8} {'p95':>8} {'max':>8} "
                          f"{'queries':>7} {'KiB':>5} {'rows':>4}  result")
        for page in pages:
            if page.median is None:
                self.stdout.write(f"{page.name:<{width}}  {'-':>8} {'-':>8} {'-':>8} "
                                  f"{'-':>7} {'-':>5} {'-':>4}  {page.verdict} {page.note}"
                                  .rstrip())
                continue
            rows = "-" if page.rows is None else str(page.rows)
            self.stdout.write(
                f"{page.name:<{width}}  {page.median:>8.1f} {page.p95:>8.1f} {page.max:>8.1f} "
                f"{page.queries:>7} {page.bytes / 1024:>5.0f} {rows:>4}  {page.verdict} "
                f"{page.note}".rstrip())
        self.stdout.write(f"(ms; rows: jobs listed; PASS/FAIL: required pages, median under "
                          f"{LIMIT_MS:.0f} ms)")
        for page in pages:
            self.stdout.write(f"  {page.name}: {page.url}")

    # -- who -----------------------------------------------------------------------------------

    def _login_user(self, username: str | None) -> tuple[Any, bool]:
        model = get_user_model()
        if username:
            try:
                return model.objects.get(username=username), False
            except model.DoesNotExist:
                raise CommandError(f"no user {username!r}") from None
        model.objects.filter(username=BENCH_USER).delete()  # left over by an interrupted run
        return model.objects.create_superuser(BENCH_USER, password=None), True


def _load() -> str:
    """The machine's load average: on a shared machine, what the timings competed with."""
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"
    except OSError:
        return "unknown"


def _phrases(message: str) -> tuple[str, str]:
    """(a phrase of words many similar errors share, a token with digits that few share)."""
    words = [m.strip() for m in re.findall(r"[A-Za-z_][A-Za-z_ ]{4,}[A-Za-z_]", message)]
    phrase = max(words, key=len) if words else message[:20]
    tokens = [t.strip(".,:;()'\"<>[]{}") for t in message.split() if re.search(r"\d", t)]
    tokens = [t for t in tokens if len(t) >= 5]
    return phrase, (max(tokens, key=len) if tokens else "")
