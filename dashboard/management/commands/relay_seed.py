"""`manage.py relay_seed --jobs 1000000 --executions-per-job 2`: a realistic job history, fast.

For benchmarks and demos only -- never run it against a production database. It writes job,
execution, dead-letter and worker rows directly with set-based SQL (`INSERT ... SELECT` over
`generate_series` on PostgreSQL, a recursive CTE on SQLite), bypassing `queues.store`, and
refuses to run when the jobs table already holds rows unless `--append` is given.

What it makes, deterministically (a multiplicative hash of the job id picks every "random"
value, so the same ids get the same rows on both databases):
  - eleven tasks on nine queues (receipts, reports, webhooks, billing, images, search, CRM
    sync, exports, push notifications, a team-a queue) with keyword arguments such as
    {"customer_id": 42, "report": "churn"}, some tags, results for successes;
  - states: mostly success; `--failed-fraction` of the jobs dead-lettered (more for flaky
    tasks such as webhooks, fewer for receipts), ~0.5 % cancelled; the newest jobs also hold
    retrying (`failed`), waiting (`scheduled`) and `running` ones;
  - `--executions-per-job` attempts per job on average (N-1, N, N+1 cycling, so the total is
    jobs x N): earlier attempts ended in error, timeout or lost; the last one matches the
    job's state; failed attempts carry an error type, message and traceback;
  - a dead letter per dead-lettered job (older ones discarded), six workers (two alive).
Every row satisfies the tables' constraints (finished_at iff terminal, running jobs have a
lease and an open execution, one execution per (job, lease_token), open dead letters ...).
At the end the tables are analysed (PostgreSQL: VACUUM ANALYZE, as autovacuum would).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction

from queues.models import Job, Worker

SQLITE_MAX_JOBS = 200_000  # the SQLite path is for tests and laptops; PostgreSQL does millions
MAX_EXECUTIONS_PER_JOB = 10
WINDOW_SHARE = 0.01  # the newest 1 % of the seeded jobs are "recent": active states live there
WINDOW_MIN = 50
NEWEST_OFFSET = 1800  # seconds: the newest seeded job was created this long before the seed ran
CANCELLED_SHARE = 0.005
SCHEDULED_SHARE = 0.05  # of the recent window
RUNNING_SHARE = 0.002  # of the recent window
CUSTOMERS = 50_000
ACK_TIMEOUT = 300.0  # seconds
RETRY_GAP = 30  # seconds between an attempt's end and the next attempt's start
HASH = 2**32
# Odd multipliers near 2**32 times (phi-1, sqrt2-1, sqrt3-1, sqrt7-2, e-2, pi-3): the hashes
# of consecutive ids are well spread and independent of each other.
M_STATE, M_TASK, M_MISC, M_CUST, M_TAGS, M_PICK = (
    2654435761, 1779033703, 3144134277, 2773480763, 3085029667, 608135817)


@dataclass(frozen=True)
class Sql:
    """A raw SQL expression (a column of the seed's inner query, or arithmetic on it)."""

    sql: str


@dataclass(frozen=True)
class Pick:
    """One of some literal strings, chosen by the job's hash."""

    options: tuple[str, ...]


@dataclass(frozen=True)
class Err:
    type: str
    message: str  # a template: {cust} and {id} are filled in per job
    retryable: bool
    frame: tuple[str, int, str, str] | None = None  # library frame: file, line, function, code


@dataclass(frozen=True)
class Kind:
    name: str
    queue: str
    weight: int
    seconds: float  # typical duration of an attempt
    failure: float  # relative likelihood of dead-lettering
    kwargs: dict[str, Any]
    result: dict[str, Any]
    frame: tuple[str, int, str, str]
    errors: tuple[Err, Err]
    args: list[Any] = field(default_factory=list)
    priority: int = 0
    max_attempts: int = 5
    timeout: float | None = None
    dedup: str | None = None


CUST = Sql("cust")
ID = Sql("id")
HP = Sql("hp")

KINDS: tuple[Kind, ...] = (
    Kind("emails.send_receipt", "emails", 20, 0.4, 0.4,
         {"customer_id": CUST, "order_id": Sql("(500000 + id)"), "template": "receipt",
          "to": "customer{cust}@example.com"},
         {"message_id": "<{id}.relay@mail.example.com>"},
         ("app/emails/tasks.py", 57, "send_receipt", "smtp.send_message(message, to_addrs=[to])"),
         (Err("smtplib.SMTPRecipientsRefused",
              "{'customer{cust}@example.com': (550, b'5.1.1 mailbox unavailable')}", False,
              ("/usr/lib/python3.11/smtplib.py", 887, "sendmail",
               "raise SMTPRecipientsRefused(senderrs)")),
          Err("smtplib.SMTPServerDisconnected", "Connection unexpectedly closed: timed out",
              True, ("/usr/lib/python3.11/smtplib.py", 405, "getreply",
                     'raise SMTPServerDisconnected("Connection unexpectedly closed: " + str(e))'))),
         timeout=30, dedup="receipt-{id}"),
    Kind("reports.build", "reports", 12, 8.0, 1.0,
         {"customer_id": CUST,
          "report": Pick(("monthly-revenue", "churn", "usage", "invoices", "tax-summary")),
          "format": Pick(("pdf", "xlsx", "csv"))},
         {"rows": Sql("(10 + (hp * 490) / 4294967296)"), "url": "s3://reports/{cust}/{id}.pdf"},
         ("app/reports/tasks.py", 88, "build", "rendered = render_report(template, rows)"),
         (Err("reports.errors.TemplateMissing",
              "report template not found for customer {cust} (locale de-CH)", False,
              ("app/reports/templates.py", 31, "load", "raise TemplateMissing(name, customer_id)")),
          Err("numpy.core._exceptions._ArrayMemoryError",
              "Unable to allocate 2.10 GiB for an array with shape (281000000,) and data type "
              "float64", True)),
         max_attempts=3, timeout=600),
    Kind("webhooks.deliver", "webhooks", 18, 0.3, 2.0,
         {"customer_id": CUST, "endpoint": "https://hooks.customer{cust}.example.net/relay",
          "event": Pick(("invoice.paid", "order.shipped", "customer.updated",
                         "subscription.renewed")),
          "delivery_id": "whd_{id}"},
         {"status": 200, "elapsed_ms": Sql("((hp * 900) / 4294967296)")},
         ("app/webhooks/tasks.py", 33, "deliver", "response.raise_for_status()"),
         (Err("requests.exceptions.HTTPError",
              "502 Server Error: Bad Gateway for url: https://hooks.customer{cust}.example.net"
              "/relay", True,
              ("/srv/venv/lib/python3.11/site-packages/requests/models.py", 1021,
               "raise_for_status", "raise HTTPError(http_error_msg, response=self)")),
          Err("requests.exceptions.ConnectTimeout",
              "HTTPSConnectionPool(host='hooks.customer{cust}.example.net', port=443): Max "
              "retries exceeded with url: /relay (Caused by ConnectTimeoutError(<urllib3."
              "connection.HTTPSConnection object at 0x7f3a2c1e4d90>, 'Connection to "
              "hooks.customer{cust}.example.net timed out. (connect timeout=5)'))", True,
              ("/srv/venv/lib/python3.11/site-packages/requests/adapters.py", 507, "send",
               "raise ConnectTimeout(e, request=request)"))),
         max_attempts=8, timeout=15),
    Kind("billing.charge_invoice", "billing", 8, 1.2, 1.5,
         {"customer_id": CUST, "invoice_id": "in_{id}",
          "amount_cents": Sql("(500 + (hp * 50000) / 4294967296)"),
          "currency": Pick(("EUR", "USD", "GBP", "CHF"))},
         {"charge_id": "ch_{id}", "status": "succeeded"},
         ("app/billing/tasks.py", 71, "charge_invoice",
          "charge = gateway.charge(invoice, idempotency_key=key)"),
         (Err("billing.errors.CardDeclined",
              "card declined for customer {cust}: insufficient_funds (invoice in_{id})", False,
              ("app/billing/gateway.py", 118, "charge",
               'raise CardDeclined(customer_id, body["decline_code"])')),
          Err("billing.errors.GatewayUnavailable",
              "payment gateway returned 503 Service Unavailable (request req_{id})", True,
              ("app/billing/gateway.py", 102, "charge", "raise GatewayUnavailable(response)"))),
         priority=10, max_attempts=3, timeout=60),
    Kind("images.resize", "media", 10, 2.5, 0.7,
         {"sizes": [64, 256, 1024], "format": "webp"},
         {"variants": 3, "bytes": Sql("(20000 + (hp * 900000) / 4294967296)")},
         ("app/media/tasks.py", 24, "resize", "with Image.open(source) as image:"),
         (Err("PIL.UnidentifiedImageError",
              "cannot identify image file 's3://uploads/{cust}/img-{id}.jpg'", False,
              ("/srv/venv/lib/python3.11/site-packages/PIL/Image.py", 3283, "open",
               "raise UnidentifiedImageError(msg)")),
          Err("OSError", "[Errno 28] No space left on device: '/tmp/relay-resize-{id}.webp'",
              True)),
         args=["s3://uploads/{cust}/img-{id}.jpg"], priority=-5, max_attempts=3, timeout=120),
    Kind("search.reindex_customer", "search", 6, 4.0, 0.8,
         {"customer_id": CUST, "index": "customers-v7"},
         {"documents": Sql("((hp * 5000) / 4294967296)")},
         ("app/search/tasks.py", 45, "reindex_customer", "helpers.bulk(client, actions(customer))"),
         (Err("elasticsearch.exceptions.ConnectionTimeout",
              "ConnectionTimeout caused by - ReadTimeoutError(HTTPConnectionPool(host="
              "'search-2.internal', port=9200): Read timed out. (read timeout=30))", True,
              ("/srv/venv/lib/python3.11/site-packages/elasticsearch/connection/http_urllib3.py",
               255, "perform_request", "raise ConnectionTimeout(\"TIMEOUT\", str(e), e)")),
          Err("elasticsearch.exceptions.NotFoundError",
              "NotFoundError(404, 'index_not_found_exception', 'no such index [customers-v7]')",
              False)),
         timeout=300),
    Kind("examples.flaky_api_call", "default", 8, 0.6, 2.5,
         {"endpoint": "https://api.partner.example.com/v2/orders/{id}"},
         {"endpoint": "https://api.partner.example.com/v2/orders/{id}", "status": 200},
         ("relay_project/examples/tasks.py", 21, "flaky_api_call",
          'raise ConnectionError(f"{endpoint}: upstream timed out")'),
         (Err("ConnectionError", "https://api.partner.example.com/v2/orders/{id}: upstream "
                                 "timed out", True),
          Err("ConnectionError", "https://api.partner.example.com/v2/orders/{id}: 429 Too "
                                 "Many Requests", True)),
         max_attempts=4),
    Kind("crm.sync_contact", "integrations", 8, 0.9, 1.2,
         {"customer_id": CUST, "contact_id": "003{id}", "api_token": "tok_live_4f9a{cust}"},
         {"updated_fields": Sql("((hp * 12) / 4294967296)")},
         ("app/crm/tasks.py", 62, "sync_contact", "client.contacts.update(contact_id, fields)"),
         (Err("crm.client.RateLimited",
              "429 Too Many Requests from crm.example.com: retry after 60 s (contact 003{id})",
              True, ("app/crm/client.py", 140, "_request", "raise RateLimited(response)")),
          Err("crm.client.ContactNotFound",
              "contact 003{id} does not exist in the CRM (customer {cust})", False,
              ("app/crm/client.py", 133, "_request", "raise ContactNotFound(path)"))),
         timeout=60, dedup="crm-{cust}-{id}"),
    Kind("exports.orders_csv", "reports", 3, 20.0, 1.0,
         {"customer_id": CUST, "since": "2025-01-01", "columns": ["id", "total", "status"]},
         {"rows": Sql("((hp * 100000) / 4294967296)"), "url": "s3://exports/{cust}/orders-{id}.csv"},
         ("app/exports/tasks.py", 39, "orders_csv", "for row in cursor.stream(query):"),
         (Err("psycopg.errors.QueryCanceled", "canceling statement due to statement timeout",
              True, ("/srv/venv/lib/python3.11/site-packages/psycopg/cursor.py", 97, "execute",
                     "raise ex.with_traceback(None)")),
          Err("UnicodeEncodeError", "'latin-1' codec can't encode character '\u2013' in position "
                                    "41: ordinal not in range(256)", False)),
         priority=-10, max_attempts=2, timeout=1800),
    Kind("notifications.push", "notifications", 5, 0.2, 0.8,
         {"user_id": Sql("(100000 + cust)"), "title": "Your report is ready",
          "device": Pick(("ios", "android", "web"))},
         {"delivered": 1},
         ("app/notifications/tasks.py", 18, "push", "token = profile.devices[device]"),
         (Err("KeyError", "'device_token'", False),
          Err("firebase_admin.exceptions.UnavailableError",
              "The service is currently unavailable.", True)),
         max_attempts=3, timeout=10),
    Kind("team_a.reconcile_ledger", "team-a", 2, 3.0, 1.0,
         {"account_id": CUST, "currency": Pick(("EUR", "USD"))},
         {"entries": Sql("((hp * 3000) / 4294967296)"), "balanced": 1},
         ("app/team_a/tasks.py", 76, "reconcile_ledger", "assert_balanced(account, entries)"),
         (Err("ValueError", "ledger mismatch for account {cust}: expected 120000, got 119850",
              False, ("app/team_a/ledger.py", 12, "assert_balanced",
                      'raise ValueError(f"ledger mismatch for account {account.id}: ..."')),
          Err("psycopg.OperationalError",
              "consuming input failed: server closed the connection unexpectedly", True)),
         max_attempts=3, timeout=300),
)

WORKERS = (  # name, host, state: two alive, three stopped after a deploy, one lost
    ("relay-worker-a:4121", "relay-worker-a", Worker.State.RUNNING),
    ("relay-worker-b:3987", "relay-worker-b", Worker.State.RUNNING),
    ("relay-worker-a:2210", "relay-worker-a", Worker.State.STOPPED),
    ("relay-worker-b:2211", "relay-worker-b", Worker.State.STOPPED),
    ("relay-worker-c:1822", "relay-worker-c", Worker.State.STOPPED),
    ("relay-worker-c:977", "relay-worker-c", Worker.State.LOST),
)

TERMINAL_SQL = "('success', 'dead_letter', 'cancelled')"
WORKER_HEAD = (
    ("/srv/relay/queues/worker/child.py", 141, "_run", "result = handler(*args, **kwargs)"),
)


def lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def template(text: str) -> str:
    """'customer{cust}@x' -> 'customer' || cust || '@x' (cust and id are inner columns)."""
    parts: list[str] = []
    rest = text
    while rest:
        starts = [(rest.find(f"{{{name}}}"), name) for name in ("cust", "id")]
        starts = [(at, name) for at, name in starts if at >= 0]
        if not starts:
            parts.append(lit(rest))
            break
        at, name = min(starts)
        if at:
            parts.append(lit(rest[:at]))
        parts.append(f"CAST({name} AS TEXT)")
        rest = rest[at + len(name) + 2:]
    return " || ".join(parts) if parts else "''"


def case(selector: str, values: list[str], default: str = "NULL") -> str:
    whens = " ".join(f"WHEN {i} THEN {v}" for i, v in enumerate(values))
    return f"CASE {selector} {whens} ELSE {default} END"


class Dialect:
    """The few spellings PostgreSQL and SQLite do not share."""

    def __init__(self, vendor: str, t0: datetime) -> None:
        self.postgres = vendor == "postgresql"
        self.t0 = t0

    def series(self, lo: int, hi: int) -> str:
        if self.postgres:
            return f"(SELECT g FROM generate_series({lo}::bigint, {hi}::bigint) AS g) AS series"
        return (f"(WITH RECURSIVE r(g) AS (SELECT {lo} UNION ALL SELECT g + 1 FROM r "
                f"WHERE g < {hi}) SELECT g FROM r) AS series")

    def ts(self, seconds: str) -> str:
        """t0 + seconds (an SQL expression), as the column type wants it."""
        if self.postgres:
            return (f"(TIMESTAMPTZ '{self.t0.isoformat()}' + ({seconds}) * INTERVAL '1 second')")
        return (f"strftime('%Y-%m-%d %H:%M:%f', julianday('{self.t0:%Y-%m-%d %H:%M:%S.%f}') "
                f"+ ({seconds}) / 86400.0)")

    def ts_add(self, column: str, seconds: str) -> str:
        if self.postgres:
            return f"({column} + ({seconds}) * INTERVAL '1 second')"
        return f"strftime('%Y-%m-%d %H:%M:%f', julianday({column}) + ({seconds}) / 86400.0)"

    @property
    def nl(self) -> str:
        return "chr(10)" if self.postgres else "char(10)"

    def json(self, value: Any) -> str:
        """A JSON value built in SQL from Python values, Sql expressions, templates, Picks."""
        if isinstance(value, Sql):
            return value.sql
        if isinstance(value, Pick):
            return case(f"((hp * {len(value.options)}) / {HASH})",
                        [lit(o) for o in value.options])
        if isinstance(value, str):
            return template(value)
        if isinstance(value, bool):
            raise TypeError("booleans differ between the databases' JSON builders")
        if isinstance(value, (int, float)):
            return repr(value)
        if isinstance(value, list):
            fn = "jsonb_build_array" if self.postgres else "json_array"
            return f"{fn}({', '.join(self.json(v) for v in value)})"
        if isinstance(value, dict):
            fn = "jsonb_build_object" if self.postgres else "json_object"
            pairs = ", ".join(f"{lit(k)}, {self.json(v)}" for k, v in value.items())
            return f"{fn}({pairs})"
        raise TypeError(f"cannot seed {value!r}")


@dataclass
class Plan:
    jobs: int
    per_job: int
    failed_fraction: float
    days: float
    base: int  # seeded ids are base + 1 .. base + jobs
    workers: list[tuple[int, str, str]]  # id, name, state

    @property
    def window(self) -> int:
        return min(self.jobs, max(int(self.jobs * WINDOW_SHARE), WINDOW_MIN))


def hashed(column: str, multiplier: int) -> str:
    return f"(({column}) * {multiplier}) % {HASH}"


def task_index(h: str) -> str:
    """Task by weight, from a hash in [0, 2**32)."""
    total = sum(k.weight for k in KINDS)
    bounds, acc = [], 0
    for i, kind in enumerate(KINDS[:-1]):
        acc += kind.weight
        bounds.append(f"WHEN {h} < {acc * HASH // total} THEN {i}")
    return f"CASE {' '.join(bounds)} ELSE {len(KINDS) - 1} END"


def duration(ti: str, h_misc: str) -> str:
    base = case(ti, [repr(k.seconds) for k in KINDS], "1.0")
    return f"(({base}) * (0.25 + (({h_misc}) * 1500 / {HASH}) / 1000.0))"


def attempts_sql(id_col: str, per_job: int) -> str:
    if per_job == 1:
        return "1"
    return (f"CASE ({id_col}) % 4 WHEN 1 THEN {per_job - 1} WHEN 3 THEN {per_job + 1} "
            f"ELSE {per_job} END")


def state_sql(plan: Plan) -> str:
    """Per task: dead letters in proportion to its failure weight, anywhere; retrying,
    waiting and running jobs only among the newest (the window); the very newest job runs
    and the one before it waits, so even a tiny seed has every state."""
    weights = sum(k.weight for k in KINDS)
    scale = weights / sum(k.weight * k.failure for k in KINDS)
    newest = plan.jobs
    branches = []
    for kind in KINDS:
        dead = min(plan.failed_fraction * kind.failure * scale, 0.9)
        bounds = [dead]
        for share in (CANCELLED_SHARE, min(2 * plan.failed_fraction * kind.failure * scale, 0.3),
                      SCHEDULED_SHARE, RUNNING_SHARE):
            bounds.append(min(bounds[-1] + share, 1.0))
        dl, cancelled, failed, scheduled, running = (int(b * HASH) for b in bounds)
        branches.append(
            f"CASE WHEN hs < {dl} THEN 'dead_letter' WHEN hs < {cancelled} THEN 'cancelled' "
            f"WHEN recent = 1 AND hs < {failed} THEN 'failed' "
            f"WHEN recent = 1 AND hs < {scheduled} THEN 'scheduled' "
            f"WHEN recent = 1 AND hs < {running} THEN 'running' ELSE 'success' END")
    return (f"CASE WHEN g = {newest} THEN 'running' WHEN g = {newest - 1} THEN 'scheduled' "
            f"ELSE {case('ti', branches, repr('success'))} END")


def worker_pick(plan: Plan, expr: str, running_only: bool = False) -> str:
    ids = [w[0] for w in plan.workers if not running_only or w[2] == Worker.State.RUNNING]
    return case(f"({expr}) % {len(ids)}", [str(i) for i in ids])


def multiline(d: Dialect, text: str) -> str:
    """A Python string as SQL, its newlines spelled chr(10) so every literal is one line."""
    return "(" + f" || {d.nl} || ".join(lit(part) for part in text.split("\n")) + ")"


def traceback_sql(d: Dialect, task_col: str, type_col: str, message_col: str) -> str:
    """A Python traceback: the worker's frame, the task's frame, the error's library frame."""
    def frame(f: tuple[str, int, str, str]) -> str:
        return f'  File "{f[0]}", line {f[1]}, in {f[2]}\n    {f[3]}\n'

    head = "Traceback (most recent call last):\n" + "".join(frame(f) for f in WORKER_HEAD)
    task_frames = " ".join(
        f"WHEN {lit(k.name)} THEN {multiline(d, frame(('/srv/' + k.frame[0], *k.frame[1:])))}"
        for k in KINDS)
    lib: dict[str, str] = {}
    for kind in KINDS:
        for err in kind.errors:
            if err.frame and err.type not in lib:
                lib[err.type] = frame(err.frame)
    lib_frames = " ".join(f"WHEN {lit(t)} THEN {multiline(d, text)}" for t, text in lib.items())
    return (f"{multiline(d, head)} || CASE {task_col} {task_frames} ELSE '' END || "
            f"CASE {type_col} {lib_frames} ELSE '' END || {type_col} || ': ' || {message_col}")


def jobs_sql(d: Dialect, plan: Plan, lo: int, hi: int) -> str:
    """Insert seeded jobs g = lo..hi (ids base + g)."""
    kinds = list(KINDS)
    error_types = [lit(e.type) for k in kinds for e in k.errors]
    error_messages = [template(e.message) for k in kinds for e in k.errors]
    retryable = ["1" if e.retryable else "0" for k in kinds for e in k.errors]
    span = plan.days * 86400
    terminal = TERMINAL_SQL
    start_end = "(start_s + d)"
    cancelled_error = lit("queues.exceptions.JobCancelled")
    lost_error = lit("queues.exceptions.LeaseExpired")
    last_error_type = (f"CASE WHEN state IN ('dead_letter', 'failed') THEN "
                       f"{case('ek', error_types, repr(''))} "
                       f"WHEN state = 'cancelled' THEN {cancelled_error} "
                       f"WHEN state = 'scheduled' AND c > 0 THEN {lost_error} ELSE '' END")
    last_error_message = (
        f"CASE WHEN state IN ('dead_letter', 'failed') THEN "
        f"{case('ek', error_messages, repr(''))} "
        f"WHEN state = 'cancelled' THEN 'cancelled by request while running' "
        f"WHEN state = 'scheduled' AND c > 0 THEN 'no acknowledgement before the lease ran out "
        f"(worker ' || {_worker_name(plan, 'worker_id')} || ' died, froze or was cut off)' "
        f"ELSE '' END")
    max_attempts = (
        f"CASE WHEN state = 'dead_letter' AND {case('ek', retryable, '1')} = 1 THEN c "
        f"WHEN state = 'failed' THEN c + 2 "
        f"WHEN c > {case('ti', [str(k.max_attempts) for k in kinds], '5')} THEN c "
        f"ELSE {case('ti', [str(k.max_attempts) for k in kinds], '5')} END")
    run_at = (f"CASE WHEN state = 'failed' THEN {d.ts('30 + (hp * 900) / ' + str(HASH))} "
              f"WHEN state = 'scheduled' AND (hp * 2) / {HASH} = 0 "
              f"THEN {d.ts('60 + (hp * 86400) / ' + str(HASH))} "
              f"WHEN state = 'scheduled' THEN {d.ts(start_end)} "
              f"ELSE {d.ts('created_s')} END")
    tags = case(f"((ht2 * 20) / {HASH})",
                [d.json(["nightly"]), d.json(["backfill", "low-priority"]), d.json(["vip"])],
                d.json([]))
    dedup = case("ti", [template(k.dedup) if k.dedup else "NULL" for k in kinds])
    return f"""
INSERT INTO queues_job (id, task, queue, priority, args, kwargs, tags, meta, state, run_at,
    created_at, started_at, finished_at, attempts, max_attempts, backoff, timeout, ack_timeout,
    lease_token, leased_until, cancel_requested_at, dedup_key, progress, result,
    last_error_type, last_error_message, worker_id)
SELECT id, {case('ti', [lit(k.name) for k in kinds])}, {case('ti', [lit(k.queue) for k in kinds])},
    {case('ti', [str(k.priority) for k in kinds], '0')},
    {case('ti', [d.json(k.args) for k in kinds])},
    {case('ti', [d.json(k.kwargs) for k in kinds])},
    {tags}, '{{}}', state, {run_at}, {d.ts('created_s')}, {d.ts('start_s')},
    CASE WHEN state IN {terminal} THEN {d.ts(start_end)} END,
    c, {max_attempts}, '{{}}',
    {case('ti', [repr(k.timeout) if k.timeout else 'NULL' for k in kinds])}, {ACK_TIMEOUT}, c,
    CASE WHEN state = 'running' THEN {d.ts('start_s + ' + str(ACK_TIMEOUT))} END,
    CASE WHEN state = 'cancelled' THEN {d.ts('start_s + d / 2')} END,
    {dedup}, NULL,
    CASE WHEN state = 'success' THEN {case('ti', [d.json(k.result) for k in kinds])} END,
    {last_error_type}, {last_error_message}, worker_id
FROM (
    SELECT s2.*,
        CASE WHEN state = 'running' THEN {worker_pick(plan, 'id', running_only=True)}
             ELSE {worker_pick(plan, 'id')} END AS worker_id,
        CASE WHEN state = 'running' THEN -(1 + (hp * 60) / {HASH})
             ELSE created_s + 0.02 + (c - 1) * (d + {RETRY_GAP}) END AS start_s
    FROM (
        SELECT s1.*, {state_sql(plan)} AS state
        FROM (
            SELECT s0.*, 1 + (hc * {CUSTOMERS}) / {HASH} AS cust,
                {attempts_sql('id', plan.per_job)} AS c,
                ti * 2 + (hv * 2) / {HASH} AS ek,
                CASE WHEN g > {plan.jobs - plan.window} THEN 1 ELSE 0 END AS recent,
                -{NEWEST_OFFSET} - ({plan.jobs} - g) * {span / plan.jobs!r} AS created_s,
                {duration('ti', 'hm')} AS d
            FROM (
                SELECT g, id, hs, hm, hc, hv, hp, ht2, {task_index('ht')} AS ti
                FROM (
                    SELECT g, {plan.base} + g AS id,
                        {hashed(f'{plan.base} + g', M_STATE)} AS hs,
                        {hashed(f'{plan.base} + g', M_TASK)} AS ht,
                        {hashed(f'{plan.base} + g', M_MISC)} AS hm,
                        {hashed(f'{plan.base} + g', M_CUST)} AS hc,
                        {hashed(f'{plan.base} + g + 7', M_PICK)} AS hv,
                        {hashed(f'{plan.base} + g', M_PICK)} AS hp,
                        {hashed(f'{plan.base} + g', M_TAGS)} AS ht2
                    FROM {d.series(lo, hi)}
                ) h
            ) s0
        ) s1
    ) s2
) x
"""


def _worker_name(plan: Plan, column: str) -> str:
    return "CASE " + column + " " + " ".join(
        f"WHEN {wid} THEN {lit(name)}" for wid, name, _ in plan.workers) + " ELSE 'unknown' END"


def executions_sql(d: Dialect, plan: Plan, lo_id: int, hi_id: int) -> str:
    """One execution per attempt of the jobs with ids lo_id..hi_id, read back from the jobs."""
    numbers = " UNION ALL ".join(f"SELECT {n} AS n" for n in range(1, MAX_EXECUTIONS_PER_JOB + 2))
    transient_type = ("CASE kind WHEN 0 THEN 'ConnectionResetError' "
                      "WHEN 1 THEN 'queues.exceptions.JobTimedOut' "
                      "ELSE 'queues.exceptions.LeaseExpired' END")
    transient_message = (
        "CASE kind WHEN 0 THEN '[Errno 104] Connection reset by peer' "
        "WHEN 1 THEN 'ran past its time limit and was stopped' "
        "ELSE 'no acknowledgement before the lease ran out (worker ' || "
        f"{_worker_name(plan, 'e_worker')} || ' died, froze or was cut off)' END")
    early_start = d.ts_add("created_at", f"0.02 + (n - 1) * (d + {RETRY_GAP})")
    early_end = d.ts_add("created_at", f"0.02 + (n - 1) * (d + {RETRY_GAP}) + "
                                       "CASE kind WHEN 0 THEN d * 0.3 ELSE d END")
    return f"""
INSERT INTO queues_execution (job_id, attempt, lease_token, worker_id, started_at, finished_at,
    outcome, output, error_type, error_message, traceback, late_outcome, late_reported_at)
SELECT id, n, n, e_worker,
    CASE WHEN last = 1 THEN started_at ELSE {early_start} END,
    CASE WHEN last = 0 THEN {early_end}
         WHEN state = 'running' THEN NULL
         WHEN state IN {TERMINAL_SQL} THEN finished_at
         ELSE {d.ts_add('started_at', 'd')} END,
    outcome,
    CASE WHEN outcome = 'success' THEN result END,
    etype, emsg,
    CASE WHEN outcome IN ('error', 'timeout')
         THEN {traceback_sql(d, 'task', 'etype', 'emsg')} ELSE '' END,
    '', NULL
FROM (
    SELECT e1.*,
        CASE WHEN last = 0 THEN {transient_type} ELSE last_error_type END AS etype,
        CASE WHEN last = 0 THEN {transient_message} ELSE last_error_message END AS emsg
    FROM (
        SELECT e0.*,
            CASE WHEN last = 0 THEN CASE kind WHEN 0 THEN 'error' WHEN 1 THEN 'timeout'
                                              ELSE 'lost' END
                 WHEN state = 'success' THEN 'success'
                 WHEN state = 'running' THEN NULL
                 WHEN state = 'cancelled' THEN 'cancelled'
                 WHEN state = 'scheduled' THEN 'lost'
                 ELSE 'error' END AS outcome,
            CASE WHEN last = 1 THEN worker_id
                 ELSE {worker_pick(plan, 'id + n')} END AS e_worker
        FROM (
            SELECT j.id, j.task, j.state, j.created_at, j.started_at, j.finished_at,
                j.worker_id, j.result, j.last_error_type, j.last_error_message, a.n,
                CASE WHEN a.n = j.attempts THEN 1 ELSE 0 END AS last,
                (j.id + a.n) % 3 AS kind,
                {duration(task_index(hashed('j.id', M_TASK)), hashed('j.id', M_MISC))} AS d
            FROM queues_job j JOIN ({numbers}) a ON a.n <= j.attempts
            WHERE j.id BETWEEN {lo_id} AND {hi_id}
        ) e0
    ) e1
) e
ORDER BY id, n
"""


def dead_letters_sql(d: Dialect, lo_id: int, hi_id: int) -> str:
    """A dead letter per dead-lettered job; those older than three days were discarded."""
    old = f"j.finished_at < {d.ts(str(-3 * 86400))} AND j.id % 3 = 0"
    return f"""
INSERT INTO queues_deadletter (job_id, reason, error_type, error_message, attempts,
    created_at, resolved_at, resolution, resolved_by_id, resolution_note)
SELECT j.id,
    CASE WHEN j.max_attempts IS NOT NULL AND j.attempts >= j.max_attempts THEN 'exhausted'
         ELSE 'not_retryable' END,
    j.last_error_type, j.last_error_message, j.attempts, j.finished_at,
    CASE WHEN {old} THEN {d.ts_add('j.finished_at', '3600')} END,
    CASE WHEN {old} THEN 'discarded' ELSE '' END,
    NULL,
    CASE WHEN {old} THEN 'known upstream outage; customers were notified' ELSE '' END
FROM queues_job j
WHERE j.id BETWEEN {lo_id} AND {hi_id} AND j.state = 'dead_letter'
ORDER BY j.id
"""


class Command(BaseCommand):
    help = ("Benchmark/demo data: generate a realistic history of jobs, executions, dead "
            "letters and workers (never on a production database). Refuses a non-empty jobs "
            "table unless --append.")
    requires_system_checks: list[str] = []  # a data tool: the URL map is none of its business

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--jobs", type=int, default=100_000,
                            help="How many jobs (default 100000).")
        parser.add_argument("--executions-per-job", type=int, default=2,
                            help=f"Average attempts per job (1-{MAX_EXECUTIONS_PER_JOB}); "
                                 f"total executions = jobs x this.")
        parser.add_argument("--batch", type=int, default=100_000,
                            help="Jobs per transaction (default 100000).")
        parser.add_argument("--failed-fraction", type=float, default=0.05,
                            help="Share of the jobs that end dead-lettered (default 0.05).")
        parser.add_argument("--days", type=float, default=30,
                            help="The history spans this many days, newest ~30 min ago.")
        parser.add_argument("--append", action="store_true",
                            help="Add to a jobs table that already holds rows (run it while "
                                 "no one enqueues: seeded ids are taken after the highest).")

    def handle(self, *args: Any, jobs: int, executions_per_job: int, batch: int,
               failed_fraction: float, days: float, append: bool, **options: Any) -> None:
        if jobs < 1:
            raise CommandError("--jobs must be at least 1")
        if not 1 <= executions_per_job <= MAX_EXECUTIONS_PER_JOB:
            raise CommandError(f"--executions-per-job must be 1..{MAX_EXECUTIONS_PER_JOB}")
        if not 1 <= batch <= 1_000_000:
            raise CommandError("--batch must be 1..1000000")
        if not 0 <= failed_fraction <= 0.5:
            raise CommandError("--failed-fraction must be between 0 and 0.5")
        if not 0 < days <= 3650:
            raise CommandError("--days must be between 0 and 3650")
        vendor = connection.vendor
        if vendor not in ("postgresql", "sqlite"):
            raise CommandError(f"relay_seed supports PostgreSQL and SQLite, not {vendor}")
        if vendor == "sqlite" and jobs > SQLITE_MAX_JOBS:
            raise CommandError(
                f"SQLite: at most {SQLITE_MAX_JOBS:,} jobs (it serves one machine's volumes); "
                f"seed millions on PostgreSQL (DATABASE_URL=postgres://...)")
        if Job.objects.exists() and not append:
            raise CommandError(
                "The jobs table is not empty. relay_seed is for benchmark and demo databases; "
                "pass --append to add to existing rows anyway.")

        started = time.monotonic()
        t0 = datetime.now(UTC)
        plan = Plan(jobs=jobs, per_job=executions_per_job, failed_fraction=failed_fraction,
                    days=days, base=self._base_id(), workers=self._workers(t0))
        d = Dialect(vendor, t0)
        self.stdout.write(
            f"relay_seed: {jobs:,} jobs x ~{executions_per_job} executions on {vendor} "
            f"(ids {plan.base + 1:,}..{plan.base + jobs:,}), batches of {batch:,}")
        made = {"jobs": 0, "executions": 0, "dead_letters": 0}
        for lo in range(1, jobs + 1, batch):
            hi = min(lo + batch - 1, jobs)
            with transaction.atomic(), connection.cursor() as cursor:
                if d.postgres:
                    # The statements are long CASE trees: JIT compiling them costs seconds.
                    cursor.execute("SET LOCAL synchronous_commit TO off")
                    cursor.execute("SET LOCAL jit TO off")
                cursor.execute(jobs_sql(d, plan, lo, hi))
                made["jobs"] += cursor.rowcount
                cursor.execute(executions_sql(d, plan, plan.base + lo, plan.base + hi))
                made["executions"] += cursor.rowcount
                cursor.execute(dead_letters_sql(d, plan.base + lo, plan.base + hi))
                made["dead_letters"] += cursor.rowcount
            self.stdout.write(
                f"  {made['jobs']:>10,} jobs {made['executions']:>11,} executions "
                f"{made['dead_letters']:>9,} dead letters  {time.monotonic() - started:7.1f} s")
        inserted = time.monotonic() - started
        self._finish(d)
        self.stdout.write(self.style.SUCCESS(
            f"Seeded {made['jobs']:,} jobs, {made['executions']:,} executions, "
            f"{made['dead_letters']:,} dead letters and {len(plan.workers)} workers in "
            f"{time.monotonic() - started:.1f} s (inserts {inserted:.1f} s, "
            f"{'VACUUM ANALYZE' if d.postgres else 'ANALYZE'} "
            f"{time.monotonic() - started - inserted:.1f} s)."))

    def _base_id(self) -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT COALESCE(MAX(id), 0) FROM queues_job")
            base = cursor.fetchone()[0]
            if connection.vendor == "postgresql":
                # Never reuse the id of a deleted job: the audit log may still name it.
                cursor.execute("SELECT pg_sequence_last_value("
                               "pg_get_serial_sequence('queues_job', 'id')::regclass)")
                last = cursor.fetchone()[0]
                base = max(base, last or 0)
        return int(base)

    def _workers(self, t0: datetime) -> list[tuple[int, str, str]]:
        queues = sorted({k.queue for k in KINDS})
        tasks = [k.name for k in KINDS]
        made = []
        for i, (name, host, state) in enumerate(WORKERS):
            alive = state == Worker.State.RUNNING
            worker = Worker.objects.create(
                name=name, host=host, pid=1000 + 97 * i, queues=queues, tasks=tasks,
                concurrency=8, state=state,
                started_at=t0 - timedelta(days=2 if alive else 20 + i),
                last_heartbeat_at=t0 if alive else t0 - timedelta(days=2, hours=i),
                stopped_at=None if alive or state == Worker.State.LOST
                else t0 - timedelta(days=2, hours=i),
            )
            made.append((worker.pk, name, state))
        return made

    def _finish(self, d: Dialect) -> None:
        tables = ("queues_job", "queues_execution", "queues_deadletter", "queues_worker")
        with connection.cursor() as cursor:
            if not d.postgres:
                cursor.execute("ANALYZE")
                return
            # Explicit ids do not move the identity sequence: move it past them.
            cursor.execute("SELECT setval(pg_get_serial_sequence('queues_job', 'id'), "
                           "(SELECT MAX(id) FROM queues_job))")
            if connection.in_atomic_block:  # inside a transaction (a test): no VACUUM
                cursor.execute(f"ANALYZE {', '.join(tables)}")
                return
            # VACUUM too, as autovacuum would: the visibility map makes index-only scans work.
            for table in tables:
                started = time.monotonic()
                cursor.execute(f"VACUUM (ANALYZE) {table}")
                self.stdout.write(f"  VACUUM ANALYZE {table}: {time.monotonic() - started:.1f} s")
