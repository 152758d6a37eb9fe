"""The job filter: parsed from a URL's query string, applied to a queryset, written back to a
query string. The jobs page, dead letters, bulk actions and the API share it, so "act on
everything matching this filter" means exactly what the page showed.

Parameters (all optional, repeatable where it makes sense):
    state=failed&state=dead_letter   queue=reports   task=reports.build   worker=host-1
    tag=nightly   since=24h | 2026-11-24T10:00   until=...   arg=args.customer_id=42
    q=free text in arguments and error text   sort=-id | id | -created_at | -run_at | ...
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from queues.models import JobState

SORTS = {
    "-id": ("-id",), "id": ("id",),  # newest / oldest first: ids follow creation order
    "-run_at": ("-run_at", "-id"), "run_at": ("run_at", "id"),
    "-priority": ("-priority", "-id"), "priority": ("priority", "id"),
}
# Sorting by anything but id needs an index per column on a table of millions, which every
# claim and ack would pay for; these sorts are offered for unfinished jobs only (few rows,
# found through the state index).
UNFINISHED = {"scheduled", "running", "failed"}
_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_PATH = re.compile(r"^(args|kwargs)((?:\.[A-Za-z0-9_\-]+)+)$")
MAX_VALUES = 50


class FilterError(ValueError):
    """A parameter that cannot be understood: `field` names it, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass
class JobFilter:
    states: list[str] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    workers: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    args: list[tuple[str, Any]] = field(default_factory=list)  # (lookup path, value)
    raw_args: list[str] = field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None
    raw_since: str = ""
    raw_until: str = ""
    q: str = ""
    sort: str = "-id"

    # -- parsing ----------------------------------------------------------------------------

    @classmethod
    def from_params(cls, params: Any) -> JobFilter:
        """From a QueryDict (or a dict of str or list values). Raises FilterError."""
        def values(name: str) -> list[str]:
            if hasattr(params, "getlist"):
                got = params.getlist(name)
            else:
                raw = params.get(name, [])
                got = raw if isinstance(raw, (list, tuple)) else [raw]
            got = [str(v).strip() for v in got if str(v).strip()]
            if len(got) > MAX_VALUES:
                raise FilterError(name, f"at most {MAX_VALUES} values")
            return got

        f = cls()
        f.states = values("state")
        for state in f.states:
            if state not in JobState.values:
                raise FilterError("state", f"unknown state {state!r} (one of "
                                           f"{', '.join(JobState.values)})")
        f.queues = values("queue")
        f.tasks = values("task")
        f.workers = values("worker")
        f.tags = values("tag")
        for raw in values("arg"):
            f.args.append(_parse_arg(raw))
            f.raw_args.append(raw)
        since, until = values("since")[-1:], values("until")[-1:]
        if since:
            f.raw_since, f.since = since[0], parse_time("since", since[0])
        if until:
            f.raw_until, f.until = until[0], parse_time("until", until[0])
        if f.since and f.until and f.since > f.until:
            raise FilterError("until", "is before since")
        q = values("q")
        f.q = q[-1][:200] if q else ""
        sort = values("sort")
        if sort:
            if sort[-1] not in SORTS:
                raise FilterError("sort", f"unknown sort {sort[-1]!r} (one of "
                                          f"{', '.join(SORTS)})")
            f.sort = sort[-1]
        if f.sort not in ("-id", "id") and not (f.states and set(f.states) <= UNFINISHED):
            raise FilterError("sort", "sorting by run at or priority needs a state filter of "
                                      "scheduled, running or failed jobs (finished jobs are "
                                      "listed newest or oldest first)")
        return f

    # -- applying ---------------------------------------------------------------------------

    @property
    def is_empty(self) -> bool:
        return not (self.states or self.queues or self.tasks or self.workers or self.tags
                    or self.args or self.since or self.until or self.q)

    def apply(self, qs: QuerySet) -> QuerySet:
        if self.states:
            qs = qs.filter(state__in=self.states)
        if self.queues:
            qs = qs.filter(queue__in=self.queues)
        if self.tasks:
            qs = qs.filter(task__in=self.tasks)
        if self.workers:
            worker_q = Q()
            for name in self.workers:
                worker_q |= Q(worker__name=name)
                if is_id(name):
                    worker_q |= Q(worker_id=int(name))
            qs = qs.filter(worker_q)
        for tag in self.tags:
            # The stored list as text holds "tag" (quoted) exactly when the tag is in it.
            qs = qs.filter(tags__icontains=json.dumps(tag))
        for path, value in self.args:
            qs = qs.filter(**{path: value})
        if self.since:
            qs = qs.filter(created_at__gte=self.since)
        if self.until:
            qs = qs.filter(created_at__lte=self.until)
        if self.q:
            text = (Q(args__icontains=self.q) | Q(kwargs__icontains=self.q)
                    | Q(last_error_message__icontains=self.q)
                    | Q(last_error_type__icontains=self.q)
                    | Q(dedup_key=self.q))
            if is_id(self.q.lstrip("#")):
                text |= Q(id=int(self.q.lstrip("#")))
            qs = qs.filter(text)
        return qs.order_by(*SORTS[self.sort])

    def params(self, **overrides: Any) -> dict[str, Any]:
        """The filter as query parameters (lists for repeatable ones)."""
        out: dict[str, Any] = {
            "state": self.states, "queue": self.queues, "task": self.tasks,
            "worker": self.workers, "tag": self.tags, "arg": self.raw_args,
            "since": self.raw_since, "until": self.raw_until, "q": self.q,
            "sort": "" if self.sort == "-id" else self.sort,
        }
        out.update(overrides)
        return {k: v for k, v in out.items() if v not in ("", [], None)}

    def frozen_params(self) -> dict[str, Any]:
        """params() with relative times made absolute: the same jobs whenever it is applied."""
        return self.params(since=self.since.isoformat() if self.since else "",
                           until=self.until.isoformat() if self.until else "")

    def querystring(self, **overrides: Any) -> str:
        return urlencode(self.params(**overrides), doseq=True)


def is_id(text: str) -> bool:
    """An id as typed: ASCII digits ("³" is a digit to str.isdigit, not to int) that fit
    a 64-bit column."""
    return text.isascii() and text.isdigit() and len(text) <= 18


def _parse_arg(raw: str) -> tuple[str, Any]:
    """`args.customer_id=42` -> ("kwargs__customer_id", 42); `args.0=x` -> ("args__0", "x").
    `args.` names the job's arguments: a number is a positional index, a name a keyword."""
    if "=" not in raw:
        raise FilterError("arg", f"{raw!r} is not path=value (e.g. args.customer_id=42)")
    path, _, text = raw.partition("=")
    match = _PATH.match(path.strip())
    if not match:
        raise FilterError("arg", f"{path!r} is not a path into the arguments (e.g. "
                                 f"args.customer_id or args.0 or kwargs.order.id)")
    root, rest = match.group(1), match.group(2).lstrip(".").split(".")
    from dashboard.masking import is_secret_key

    if any(is_secret_key(part) for part in rest):
        # Matching on a secret would let anyone who may list jobs guess it one try at a time.
        raise FilterError("arg", f"{path!r} names a secret argument; it cannot be filtered on")
    if root == "args" and not rest[0].isdigit():
        root = "kwargs"
    text = text.strip()
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    if isinstance(value, (dict, list)):
        raise FilterError("arg", "compare with a single value, not an object or list")
    return "__".join([root, *rest]), value


def parse_time(name: str, raw: str) -> datetime:
    match = _RELATIVE.match(raw.lower())
    if match:
        return timezone.now() - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        value = parse_datetime(raw)
        if value is None:
            day = parse_date(raw)
            value = datetime(day.year, day.month, day.day) if day else None
    except ValueError:
        value = None
    if value is None:
        raise FilterError(name, f"{raw!r} is not a time (use 2026-11-24T10:00, 2026-11-24 or "
                                f"a span such as 30m, 24h, 7d)")
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_current_timezone())
    return value
