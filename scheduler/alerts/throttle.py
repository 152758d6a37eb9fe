"""Rate limiting and deduplication: what to announce now, and what to fold into a summary.

Per event kind and subject (a task in a queue, a workflow, a queue):
- events (dead letters, failed runs): the first opens a window of ALERT_WINDOW seconds and is
  announced at once; the rest are counted, and announced as one summary when the window ends
  (which opens the next window, so a steady storm yields one summary per window);
- conditions (backlog, no worker, stalled scheduler): announced when they start, again every
  ALERT_REPEAT seconds while they hold, and once when they clear.
Per kind, at most ALERT_MAX_PER_WINDOW announcements (alerts and summaries) start in one
window; beyond that, events are counted by subject and announced together in one overflow
summary when the kind's window ends. So a kind produces at most ALERT_MAX_PER_WINDOW + 1
alerts per window (plus "cleared" notices of conditions announced earlier), however many
events arrive.

A `Throttle` works inside its caller's transaction, on rows it locks, so the caller writes the
alerts it returns in the same transaction that records them as said.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from queues.conf import relay_settings
from scheduler.alerts import events
from scheduler.alerts.events import Alert
from scheduler.alerts.models import AlertState

KIND_BUDGET = "*"  # the subject of a kind's budget and overflow row
OVERFLOW_SUBJECTS = 200  # subjects counted by name in an overflow; the rest as "other"

Summary = Callable[[int, datetime, datetime, Any], Alert]


class Throttle:
    """One detector pass over one event kind, at time `now`. Use inside transaction.atomic();
    the caller writes `self.alerts` in that same transaction."""

    def __init__(self, kind: str, now: datetime) -> None:
        conf = relay_settings()
        self.kind = kind
        self.now = now
        self.window = timedelta(seconds=conf.ALERT_WINDOW)
        self.limit = conf.ALERT_MAX_PER_WINDOW
        self.repeat = None if conf.ALERT_REPEAT is None else timedelta(seconds=conf.ALERT_REPEAT)
        self.alerts: list[Alert] = []
        self.budget = self._state(KIND_BUDGET)
        self._roll_budget()

    # -- events --------------------------------------------------------------------------

    def close_windows(self, summary: Callable[[str, int, datetime, datetime, Any], Alert]) -> None:
        """End the windows of this kind that are over: each with folded events becomes one
        summary (or part of the overflow when the budget is spent) and opens the next window;
        one without is forgotten. `summary(subject, count, since, until, sample)`."""
        ended = (AlertState.objects.select_for_update()
                 .filter(kind=self.kind, window_start__lte=self.now - self.window)
                 .exclude(subject=KIND_BUDGET).order_by("id"))
        for state in ended:
            if not state.folded:
                state.delete()
                continue
            if self._take():
                self.alerts.append(summary(state.subject, state.folded, state.window_start,
                                           self.now, state.sample))
            else:
                self._overflow(state.subject, state.folded)
            state.window_start, state.folded, state.sample = self.now, 0, None
            state.save(update_fields=["window_start", "folded", "sample"])

    def events(self, subject: str, facts: list[dict[str, Any]],
               single: Callable[[dict[str, Any]], Alert]) -> None:
        """New events of one subject, oldest first: the first alerts at once if no window is
        open (and the budget allows); the rest are folded into the window's summary."""
        if not facts:
            return
        state = self._state(subject)
        rest = facts
        if state.window_start is None:
            if not self._take():
                self._overflow(subject, len(facts))
                if not state.folded:
                    state.delete()  # nothing open for this subject: keep the table small
                return
            self.alerts.append(single(facts[0]))
            state.window_start = self.now
            rest = facts[1:]
        if rest:
            state.folded += len(rest)
            state.sample = rest[-1]
        state.save()

    # -- conditions ----------------------------------------------------------------------

    def condition(self, subject: str, build: Callable[[datetime, bool], Alert]) -> None:
        """`subject` is in trouble now. `build(since, resolved)` makes the alert."""
        state = self._state(subject)
        if state.firing_since is None:
            state.firing_since = self.now
        due = state.last_sent_at is None or (
            self.repeat is not None and self.now - state.last_sent_at >= self.repeat)
        if due:
            if self._take():
                self.alerts.append(self._keyed(build(state.firing_since, False), "firing"))
                state.last_sent_at = self.now
            else:
                self._overflow(subject, 1, distinct=True)
        state.save()

    def clear_others(self, troubled: Iterable[str], build: Callable[[str, datetime], Alert],
                     *, keep: Iterable[str] = ()) -> None:
        """Every firing subject of this kind not in `troubled` (nor in `keep`, whose state is
        unknown this pass) has cleared: announce that if its trouble was announced."""
        skip = set(troubled) | set(keep)
        firing = (AlertState.objects.select_for_update()
                  .filter(kind=self.kind, firing_since__isnull=False)
                  .exclude(subject=KIND_BUDGET).order_by("id"))
        for state in firing:
            if state.subject in skip:
                continue
            if state.last_sent_at is not None:
                self.alerts.append(self._keyed(build(state.subject, state.firing_since),
                                               "resolved"))
            state.delete()

    # -- the kind's budget ---------------------------------------------------------------

    def _take(self) -> bool:
        budget = self.budget
        if budget.window_start is None:
            budget.window_start = self.now
        if budget.announced >= self.limit:
            budget.save()
            return False
        budget.announced += 1
        budget.save()
        return True

    def _overflow(self, subject: str, count: int, *, distinct: bool = False) -> None:
        budget = self.budget
        if budget.window_start is None:
            budget.window_start = self.now
        counts = dict(budget.sample or {})
        key = subject if subject in counts or len(counts) < OVERFLOW_SUBJECTS else "other"
        counts[key] = 1 if distinct else counts.get(key, 0) + count
        budget.sample = counts
        budget.folded = sum(counts.values())
        budget.save()

    def _roll_budget(self) -> None:
        budget = self.budget
        if budget.window_start is None or self.now - budget.window_start < self.window:
            return
        if budget.folded:
            self.alerts.append(events.overflow(self.kind, budget.folded, budget.sample or {},
                                               budget.window_start, self.now))
        budget.window_start, budget.announced, budget.folded, budget.sample = None, 0, 0, None
        budget.save()

    def _state(self, subject: str) -> AlertState:
        state, _ = AlertState.objects.select_for_update().get_or_create(kind=self.kind,
                                                                        subject=subject)
        return state

    def _keyed(self, alert: Alert, status: str) -> Alert:
        # One announcement per subject, status and moment: the row lock makes it unique.
        alert.dedup_key = f"{self.kind}:{alert.subject}:{status}:{self.now.isoformat()}"
        return alert
