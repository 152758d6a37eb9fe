"""Counters that cost what happened since the last scrape, not the size of the history.

Totals (jobs enqueued, attempts by outcome with their durations, dead letters; by task and
queue) are kept in `Tally` rows. A fold adds the rows that appeared since the previous fold and
moves the watermarks in `Rollup`; a reader adds to the tallies only what lies beyond the
watermarks -- the last minute or so, found through the primary keys and the execution outcome
index. The fold runs from the scrape itself, at most every FOLD_EVERY seconds: nothing is
written on the worker's path. Because folded rows stay counted, `relay_prune` deleting them
does not make a counter go down.

Rows are folded only once they are SETTLE seconds old, so that a transaction that had
already taken an id (or stamped a finish time) but not yet committed is not passed over. One
that stays open longer than that is missed by the totals; enqueueing inside a long-running
transaction is the only ordinary way to get there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Q, Sum

from dashboard.metrics.models import Rollup, Tally
from queues.models import DeadLetter, Execution, Job, Outcome

logger = logging.getLogger(__name__)

SETTLE = 60.0  # seconds a row waits before it is folded in (longer than any claim or ack)
FOLD_EVERY = 30.0  # seconds between folds
READ_ATTEMPTS = 5  # re-reads when a fold lands between reading the totals and the tail
ROLLUP_PK = 1
# Upper bounds (seconds) of the execution duration histogram. Fixed: totals already folded
# are counted against these bounds.
BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
           1800.0, 3600.0)


@dataclass(frozen=True, order=True)
class Key:
    kind: str
    task: str
    queue: str
    label: str = ""


@dataclass
class Total:
    count: int = 0
    seconds: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))

    def add(self, other: Total) -> None:
        self.count += other.count
        self.seconds += other.seconds
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]


Totals = dict[Key, Total]


def totals(now: datetime) -> Totals:
    """Every counter as of `now` (database clock): the tallies plus the rows beyond the fold,
    read so that a fold landing in between is never counted twice or missed."""
    fold(now)
    result: Totals = {}
    for _ in range(READ_ATTEMPTS):
        state = _state()
        result = {}
        for t in Tally.objects.all():
            result[Key(t.kind, t.task, t.queue, t.label)] = Total(t.count, t.seconds,
                                                                  list(t.buckets))
        _merge(result, _jobs(after=state.jobs_folded))
        _merge(result, _dead_letters(after=state.dead_letters_folded))
        _merge(result, _executions(since=state.executions_until))
        if Rollup.objects.filter(pk=ROLLUP_PK, version=state.version).exists():
            return result
    logger.warning("metrics totals moved under %d reads in a row; serving the last",
                   READ_ATTEMPTS, extra={"action": "metrics_read"})
    return result


def fold(now: datetime, *, force: bool = False) -> bool:
    """Add settled rows to the tallies. The sums are taken outside any transaction; only
    writing them is guarded (by the rollup's version), so one fold wins when several web
    processes try at once and the others drop their work. Returns whether this one folded."""
    state = _state()
    if not force and state.folded_at is not None and (
            (now - state.folded_at).total_seconds() < FOLD_EVERY):
        return False
    settled = now - timedelta(seconds=SETTLE)
    delta: Totals = {}
    changes: dict = {"folded_at": now}
    for name, source, reader in (("jobs", Job, _jobs),
                                 ("dead_letters", DeadLetter, _dead_letters)):
        folded, upto, seen_at = (getattr(state, f"{name}_folded"), getattr(state, f"{name}_next"),
                                 getattr(state, f"{name}_next_at"))
        if upto is not None and seen_at is not None and seen_at <= settled:
            _merge(delta, reader(after=folded, upto=upto))
            changes[f"{name}_folded"] = folded = upto
            upto = None
        if upto is None:
            # The next fold's end: ids up to here, once every transaction that had taken one
            # lower has had SETTLE seconds to commit.
            newest = source.objects.aggregate(n=Max("id"))["n"] or 0
            changes[f"{name}_next"] = newest if newest > folded else None
            changes[f"{name}_next_at"] = now if newest > folded else None
    since = state.executions_until
    if since is None or since < settled:
        _merge(delta, _executions(since=since, until=settled))
        changes["executions_until"] = settled
    with transaction.atomic():
        won = Rollup.objects.filter(pk=ROLLUP_PK, version=state.version).update(
            version=F("version") + 1, **changes)
        if won:
            _apply(delta)
    return bool(won)


def _state() -> Rollup:
    state = Rollup.objects.filter(pk=ROLLUP_PK).first()
    if state is not None:
        return state
    try:
        with transaction.atomic():
            return Rollup.objects.create(pk=ROLLUP_PK)
    except IntegrityError:  # another process created it
        return Rollup.objects.get(pk=ROLLUP_PK)


def _apply(delta: Totals) -> None:
    if not delta:
        return
    existing = {Key(t.kind, t.task, t.queue, t.label): t
                for t in Tally.objects.filter(kind__in={k.kind for k in delta})}
    changed, created = [], []
    for key, total in delta.items():
        tally = existing.get(key)
        if tally is None:
            created.append(Tally(kind=key.kind, task=key.task, queue=key.queue, label=key.label,
                                 count=total.count, seconds=total.seconds,
                                 buckets=total.buckets))
            continue
        tally.count += total.count
        tally.seconds += total.seconds
        tally.buckets = [a + b for a, b in zip(tally.buckets, total.buckets, strict=True)]
        changed.append(tally)
    Tally.objects.bulk_create(created)
    Tally.objects.bulk_update(changed, ["count", "seconds", "buckets"])


def _jobs(*, after: int, upto: int | None = None) -> Totals:
    # A range of the primary key: the rows since the last fold, never the table.
    rows = Job.objects.filter(id__gt=after)
    if upto is not None:
        rows = rows.filter(id__lte=upto)
    return {Key(Tally.Kind.ENQUEUED, r["task"], r["queue"]): Total(r["n"])
            for r in rows.values("task", "queue").annotate(n=Count("*")).order_by()}


def _dead_letters(*, after: int, upto: int | None = None) -> Totals:
    rows = DeadLetter.objects.filter(id__gt=after)
    if upto is not None:
        rows = rows.filter(id__lte=upto)
    return {Key(Tally.Kind.DEAD_LETTER, r["job__task"], r["job__queue"], r["reason"]):
            Total(r["n"])
            for r in rows.values("job__task", "job__queue", "reason")
            .annotate(n=Count("*")).order_by()}


def _executions(*, since: datetime | None, until: datetime | None = None) -> Totals:
    """Attempts that finished in [since, until), by task, queue and outcome: how many, their
    summed duration and the histogram buckets, in one aggregate query. Naming every outcome
    lets the execution outcome index serve the time range."""
    rows = Execution.objects.filter(outcome__in=Outcome.values)
    if since is not None:
        rows = rows.filter(finished_at__gte=since)
    if until is not None:
        rows = rows.filter(finished_at__lt=until)
    took = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    bounds = {f"le{i}": Count("id", filter=Q(took__lte=timedelta(seconds=bound)))
              for i, bound in enumerate(BUCKETS)}
    rows = (rows.alias(took=took).values("job__task", "job__queue", "outcome")
            .annotate(n=Count("*"), seconds=Sum("took"), **bounds).order_by())
    found: Totals = {}
    for r in rows:
        seconds = r["seconds"].total_seconds() if r["seconds"] is not None else 0.0
        found[Key(Tally.Kind.ATTEMPT, r["job__task"], r["job__queue"], r["outcome"])] = Total(
            r["n"], seconds, [r[f"le{i}"] for i in range(len(BUCKETS))])
    return found


def _merge(into: Totals, more: Totals) -> None:
    for key, total in more.items():
        if key in into:
            into[key].add(total)
        else:
            into[key] = total

