"""Failure groups: failed attempts grouped by task + exception type + normalised message.

"order 4711 not found" and "order 4712 not found" are one problem; `normalise` replaces what
varies between occurrences (numbers, hex ids, UUIDs, quoted strings, e-mail addresses, long
tokens) by placeholders, and `fingerprint` hashes (task, error type, normalised message) into a
stable id that does not change between releases of the page or between databases.

`groups()` aggregates failed executions in SQL by (task, error type, message) over a bounded
time window, reads at most MAX_MESSAGES distinct messages (newest first), and merges them in
Python by fingerprint. `DeadLetterFilter` lets bulk actions act on "open dead letters only"
and on one failure group (see dashboard.tasks and actions.retry_failure_group).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, F, Max, Min, OuterRef, QuerySet
from django.db.models.functions import Substr
from django.utils import timezone

from dashboard.filters import FilterError, JobFilter, parse_time
from queues.models import DeadLetter, Execution, Job, JobState, Outcome

# Outcomes that count as a failure of an attempt.
FAILED_OUTCOMES = (Outcome.ERROR, Outcome.TIMEOUT, Outcome.LOST)
# The windows the page offers; the key is what the URL carries.
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
DEFAULT_WINDOW = "7d"
# Most distinct (task, error type, message) rows read per page: beyond it the page says so.
MAX_MESSAGES = 5000
# Only the start of a message is compared: enough to tell problems apart, cheap to group by.
MESSAGE_PREFIX = 500
MAX_NORMALISED = 200

_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\b", re.I),
     "<uuid>"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    # Quoted text: not an apostrophe inside a word ("can't").
    (re.compile(r"(?<![\w'])'[^'\n]*'(?![\w'])"), "'<str>'"),
    (re.compile(r'"[^"\n]*"'), '"<str>"'),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    # Long tokens with at least one digit (keys, hashes, base64): words stay.
    (re.compile(r"(?<![\w<])(?=[A-Za-z_\-+/=]*\d)[A-Za-z0-9_\-+/=]{16,}"), "<token>"),
    # Hex ids of 8+ characters with at least one digit and one letter (short hashes).
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b", re.I), "<hex>"),
    (re.compile(r"\d+(?:[.,:]\d+)*"), "<n>"),
    (re.compile(r"\s+"), " "),
]


def normalise(message: str | None) -> str:
    """The message with varying parts replaced by placeholders, whitespace collapsed, at most
    MAX_NORMALISED characters."""
    text = (message or "")[:MESSAGE_PREFIX]
    for pattern, placeholder in _RULES:
        text = pattern.sub(placeholder, text)
    return text.strip()[:MAX_NORMALISED]


def fingerprint(task: str, error_type: str, message: str | None) -> str:
    """A stable id for (task, exception type, normalised message): 16 hex characters."""
    key = "\x1f".join((task or "", error_type or "", normalise(message)))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def window_start(window: str, now: datetime | None = None) -> datetime:
    """The start of a named window ("24h", "7d", "30d"). ValueError for any other name."""
    if window not in WINDOWS:
        raise ValueError(f"unknown window {window!r} (one of {', '.join(WINDOWS)})")
    return (now or timezone.now()) - WINDOWS[window]


# -- groups -------------------------------------------------------------------------------------

@dataclass
class Group:
    fingerprint: str
    task: str
    error_type: str
    message: str  # normalised
    sample: str  # one real message (the newest), for the page
    count: int = 0  # failed attempts in the window
    jobs: int = 0  # affected jobs (counted per distinct message: an upper bound)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    open_dead_letters: int = 0  # open dead letters of the group created in the window
    messages: int = 0  # distinct raw messages merged into the group


@dataclass
class GroupReport:
    groups: list[Group]
    since: datetime
    window: str
    messages_read: int
    truncated: bool  # MAX_MESSAGES was hit: older messages were not read
    total_groups: int = 0
    dead_letters_truncated: bool = False
    computed_at: datetime | None = None


def _visible(qs: QuerySet, access: Any, job_path: str) -> QuerySet:
    if access is None or access.sees_everything:
        return qs
    return qs.filter(**{f"{job_path}__in": access.jobs(Job.objects.all()).values("id")})


def groups(since: datetime | None = None, *, window: str = DEFAULT_WINDOW, limit: int = 200,
           access: Any = None, max_messages: int | None = None) -> GroupReport:
    """Failure groups over failed executions finished since `since` (default: the start of
    `window`), newest last-seen first, at most `limit` groups. With `access`, only jobs the
    user may see are counted."""
    since = since or window_start(window)
    max_messages = max_messages or MAX_MESSAGES
    rows = list(
        _visible(Execution.objects.filter(outcome__in=FAILED_OUTCOMES, finished_at__gte=since),
                 access, "job")
        .values(task=F("job__task"), etype=F("error_type"),
                msg=Substr("error_message", 1, MESSAGE_PREFIX))
        .annotate(n=Count("id"), jobs=Count("job_id", distinct=True),
                  first=Min("finished_at"), last=Max("finished_at"))
        .order_by("-last")[: max_messages + 1])
    truncated = len(rows) > max_messages
    rows = rows[:max_messages]
    merged: dict[str, Group] = {}
    for row in rows:  # newest first, so the first message seen is the newest sample
        fp = fingerprint(row["task"], row["etype"], row["msg"])
        group = merged.get(fp)
        if group is None:
            group = merged[fp] = Group(fp, row["task"], row["etype"], normalise(row["msg"]),
                                       row["msg"] or "")
        group.count += row["n"]
        group.jobs += row["jobs"]
        group.messages += 1
        group.first_seen = min(filter(None, (group.first_seen, row["first"])))
        group.last_seen = max(filter(None, (group.last_seen, row["last"])))
    letters, letters_truncated = open_dead_letter_counts(since, access=access,
                                                        max_messages=max_messages)
    for fp, n in letters.items():
        if fp in merged:
            merged[fp].open_dead_letters = n
    ordered = sorted(merged.values(), key=lambda g: (g.last_seen or since, g.count),
                     reverse=True)
    return GroupReport(ordered[:limit], since, window, len(rows), truncated, len(ordered),
                       letters_truncated, timezone.now())


def _open_letters(since: datetime, access: Any) -> QuerySet:
    return _visible(DeadLetter.objects.filter(resolved_at__isnull=True,
                                              job__state=JobState.DEAD_LETTER,
                                              created_at__gte=since), access, "job")


def open_dead_letter_counts(since: datetime, *, access: Any = None,
                            max_messages: int | None = None) -> tuple[dict[str, int], bool]:
    """Open dead letters created since `since`, counted per fingerprint (bounded read)."""
    max_messages = max_messages or MAX_MESSAGES
    rows = list(_open_letters(since, access)
                .values(task=F("job__task"), etype=F("error_type"),
                        msg=Substr("error_message", 1, MESSAGE_PREFIX))
                .annotate(n=Count("id"), last=Max("id")).order_by("-last")[: max_messages + 1])
    counts: dict[str, int] = {}
    for row in rows[:max_messages]:
        fp = fingerprint(row["task"], row["etype"], row["msg"])
        counts[fp] = counts.get(fp, 0) + row["n"]
    return counts, len(rows) > max_messages


def open_dead_letter_jobs(fingerprint_: str, since: datetime, *, access: Any = None,
                          chunk: int = 2000) -> Iterator[tuple[int, str, str, str]]:
    """(job id, task, error type, message) of every open dead letter created since `since`
    whose fingerprint is `fingerprint_`, by job id. Reads every open letter of the window in
    chunks (not bounded: a retry must not miss any)."""
    qs = (_open_letters(since, access)
          .values_list("job_id", "job__task", "error_type",
                       Substr("error_message", 1, MESSAGE_PREFIX))
          .order_by("job_id"))
    for job_id, task, etype, msg in qs.iterator(chunk_size=chunk):
        if fingerprint(task, etype, msg) == fingerprint_:
            yield job_id, task, etype, msg or ""


# -- a job filter that knows dead letters and failure groups -----------------------------------

_FINGERPRINT = re.compile(r"^[0-9a-f]{16}$")


@dataclass
class DeadLetterFilter(JobFilter):
    """A JobFilter that can also require an open dead letter (`dead_letter=open`), created
    since a time (`letters_since=7d` or an ISO time), in one failure group
    (`fingerprint=<16 hex>`). Bulk actions on the dead-letters page use it, so "all matching
    this filter" means exactly the rows the page listed. The fingerprint cannot be computed in
    SQL: `apply` narrows to open dead letters and `select` keeps the group's jobs of a batch."""

    open_dead_letter: bool = False
    fingerprint: str = ""
    letters_since: datetime | None = None
    raw_letters_since: str = ""

    @classmethod
    def from_params(cls, params: Any) -> DeadLetterFilter:
        f = super().from_params(params)

        def last(name: str) -> str:
            if hasattr(params, "getlist"):
                got = params.getlist(name)
            else:
                raw = params.get(name, [])
                got = raw if isinstance(raw, (list, tuple)) else [raw]
            got = [str(v).strip() for v in got if str(v).strip()]
            return got[-1] if got else ""

        state = last("dead_letter")
        if state not in ("", "open"):
            raise FilterError("dead_letter", "only dead_letter=open is understood")
        f.open_dead_letter = state == "open"
        f.fingerprint = last("fingerprint").lower()
        if f.fingerprint and not _FINGERPRINT.match(f.fingerprint):
            raise FilterError("fingerprint", "is 16 hexadecimal characters")
        raw = last("letters_since")
        if raw:
            f.raw_letters_since = raw
            f.letters_since = (window_start(raw) if raw in WINDOWS
                               else parse_time("letters_since", raw))
        if f.fingerprint or f.letters_since:
            f.open_dead_letter = True
        return f

    @property
    def is_empty(self) -> bool:
        return super().is_empty and not self.open_dead_letter

    def apply(self, qs: QuerySet) -> QuerySet:
        qs = super().apply(qs)
        if self.open_dead_letter:
            letters = DeadLetter.objects.filter(job_id=OuterRef("pk"), resolved_at__isnull=True)
            if self.letters_since:
                letters = letters.filter(created_at__gte=self.letters_since)
            qs = qs.filter(Exists(letters), state=JobState.DEAD_LETTER)
        return qs

    def select(self, jobs: Iterable[Job]) -> list[Job]:
        """The jobs of a batch (already matching `apply`) that are in the failure group."""
        jobs = list(jobs)
        if not self.fingerprint or not jobs:
            return jobs
        by_id = {job.pk: job for job in jobs}
        letters = DeadLetter.objects.filter(job_id__in=list(by_id), resolved_at__isnull=True)
        if self.letters_since:
            letters = letters.filter(created_at__gte=self.letters_since)
        keep = {job_id for job_id, etype, msg in letters.values_list(
                    "job_id", "error_type", Substr("error_message", 1, MESSAGE_PREFIX))
                if fingerprint(by_id[job_id].task, etype, msg) == self.fingerprint}
        return [job for job in jobs if job.pk in keep]

    def params(self, **overrides: Any) -> dict[str, Any]:
        extra = {"dead_letter": "open" if self.open_dead_letter else "",
                 "fingerprint": self.fingerprint, "letters_since": self.raw_letters_since}
        extra.update({k: v for k, v in overrides.items() if k in extra})
        base = super().params(**{k: v for k, v in overrides.items() if k not in extra})
        return {**base, **{k: v for k, v in extra.items() if v not in ("", None)}}

    def frozen_params(self) -> dict[str, Any]:
        frozen = super().frozen_params()
        if self.letters_since:
            frozen["letters_since"] = self.letters_since.isoformat()
        return frozen


def filter_from_params(params: Any) -> DeadLetterFilter:
    """Any job filter from URL parameters, dead-letter parameters included (FilterError)."""
    return DeadLetterFilter.from_params(params)
