"""What an alert says: one `Alert` per announcement, built from the rows that caused it.

Payloads carry ids, names, error type and message, counts and a dashboard link, never a job's
arguments or output (they may hold secrets); error messages have secret-looking values masked.
Links are built from RELAY["BASE_URL"] and the dashboard's URL names, so this module needs no
import of the dashboard.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.urls import NoReverseMatch, reverse

from queues.conf import relay_settings

MASK = "••••••"
MESSAGE_CHARS = 1000  # of an error message in an alert; the dashboard has all of it


@dataclass
class Alert:
    event: str
    subject: str
    dedup_key: str
    title: str
    text: str
    link: str = ""
    status: str = "firing"  # "resolved" when a condition clears
    summary: bool = False
    data: dict[str, Any] = field(default_factory=dict)

    def payload(self, at: datetime) -> dict[str, Any]:
        return {"event": self.event, "status": self.status, "summary": self.summary,
                "subject": self.subject, "title": self.title, "text": self.text,
                "link": self.link, "at": at.isoformat(), **self.data}


def link(url_name: str, *args: Any, query: dict[str, str] | None = None) -> str:
    """An absolute dashboard link (relative when BASE_URL is unset; empty without a
    dashboard)."""
    try:
        path = reverse(url_name, args=args)
    except NoReverseMatch:
        return ""
    if query:
        path += "?" + urlencode(query)
    return relay_settings().BASE_URL.rstrip("/") + path


def _secret_words() -> str:
    return "|".join(re.escape(w) for w in relay_settings().SECRET_KEYS)


def redact(text: str) -> str:
    """`text` with values after secret-looking keys masked: `password=x`, `token: x`,
    `"api_key": "x"`, `Authorization: Bearer x`; cut to MESSAGE_CHARS."""
    key = r"""(?P<key>["']?[\w-]*(?:""" + _secret_words() + r""")[\w-]*["']?\s*[:=]\s*)"""
    value = r"""(?P<value>"[^"]*"|'[^']*'|(?:bearer|basic)\s+\S+|[^\s,;&}\]]+)"""
    pattern = re.compile(key + value, re.IGNORECASE)
    masked = pattern.sub(lambda m: m.group("key") + MASK, text or "")
    if len(masked) > MESSAGE_CHARS:
        masked = masked[: MESSAGE_CHARS - 1] + "…"
    return masked


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# -- dead letters ----------------------------------------------------------------------------

def dead_letter_subject(queue: str, task: str) -> str:
    return f"{queue}/{task}"


def dead_letter_fact(letter: Any) -> dict[str, Any]:
    """The part of a DeadLetter (with its job) an alert or a summary's sample keeps."""
    job = letter.job
    return {"dead_letter_id": letter.pk, "job_id": job.pk, "task": job.task, "queue": job.queue,
            "reason": letter.reason, "attempts": letter.attempts,
            "max_attempts": job.max_attempts, "error_type": letter.error_type,
            "error_message": redact(letter.error_message),
            "dead_lettered_at": _when(letter.created_at)}


def dead_letter(fact: dict[str, Any]) -> Alert:
    error = f"{fact['error_type']}: {fact['error_message']}".strip(": ")
    return Alert(
        event="dead_letter", subject=dead_letter_subject(fact["queue"], fact["task"]),
        dedup_key=f"dead_letter:{fact['dead_letter_id']}",
        title=f"Job #{fact['job_id']} ({fact['task']}) was dead-lettered",
        text=(f"Job #{fact['job_id']} of task {fact['task']} in queue {fact['queue']} gave up "
              f"after {fact['attempts']} attempt(s) ({fact['reason']}): {error or 'no error'}"),
        link=link("dashboard:job", fact["job_id"]), data=dict(fact))


def dead_letter_summary(queue: str, task: str, count: int, since: datetime, until: datetime,
                        sample: dict[str, Any] | None) -> Alert:
    seconds = max(0, round((until - since).total_seconds()))
    latest = ""
    if sample:
        latest = (f" Latest: job #{sample['job_id']}, {sample['error_type']}: "
                  f"{sample['error_message']}")
    return Alert(
        event="dead_letter", subject=dead_letter_subject(queue, task), summary=True,
        dedup_key=f"dead_letter:summary:{queue}/{task}:{since.isoformat()}",
        title=f"{count} more dead letters of {task} in queue {queue}",
        text=(f"{count} more jobs of task {task} in queue {queue} were dead-lettered in the "
              f"last {seconds} s.{latest}"),
        link=link("dashboard:dead-letters", query={"queue": queue, "task": task}),
        data={"task": task, "queue": queue, "count": count, "window_start": _when(since),
              "window_end": _when(until), "latest": sample})


# -- workflow runs ---------------------------------------------------------------------------

def run_fact(run: Any) -> dict[str, Any]:
    return {"run_id": run.pk, "workflow": run.definition.name,
            "version": run.definition.version, "reruns": run.reruns,
            "triggered_by": run.triggered_by, "error_message": redact(run.error),
            "finished_at": _when(run.finished_at)}


def run_failed(fact: dict[str, Any]) -> Alert:
    return Alert(
        event="run_failed", subject=fact["workflow"],
        dedup_key=f"run_failed:{fact['run_id']}:{fact['reruns']}",
        title=f"Workflow run #{fact['run_id']} of {fact['workflow']} failed",
        text=(f"Run #{fact['run_id']} of {fact['workflow']} v{fact['version']} failed: "
              f"{fact['error_message'] or 'no error recorded'}"),
        link=link("dashboard:run", fact["run_id"]), data=dict(fact))


def run_failed_summary(workflow: str, count: int, since: datetime, until: datetime,
                       sample: dict[str, Any] | None) -> Alert:
    seconds = max(0, round((until - since).total_seconds()))
    latest = f" Latest: run #{sample['run_id']}: {sample['error_message']}" if sample else ""
    return Alert(
        event="run_failed", subject=workflow, summary=True,
        dedup_key=f"run_failed:summary:{workflow}:{since.isoformat()}",
        title=f"{count} more failed runs of {workflow}",
        text=f"{count} more runs of {workflow} failed in the last {seconds} s.{latest}",
        link=link("dashboard:runs", query={"workflow": workflow, "state": "failed"}),
        data={"workflow": workflow, "count": count, "window_start": _when(since),
              "window_end": _when(until), "latest": sample})


# -- conditions ------------------------------------------------------------------------------

def queue_backlog(queue: str, age: float, threshold: float, waiting: int, since: datetime,
                  *, resolved: bool = False) -> Alert:
    status = "resolved" if resolved else "firing"
    if resolved:
        title = f"Queue {queue} has caught up"
        text = f"Queue {queue}'s oldest due job now waits less than {threshold:.0f} s."
    else:
        title = f"Queue {queue}: oldest due job waiting {age:.0f} s"
        text = (f"Queue {queue} has {waiting} due job(s); the oldest has waited {age:.0f} s "
                f"(threshold {threshold:.0f} s).")
    return Alert(
        event="queue_backlog", subject=queue, status=status,
        dedup_key="",  # set by the throttle
        title=title, text=text, link=link("dashboard:queues"),
        data={"queue": queue, "oldest_age": round(age, 1), "threshold": threshold,
              "waiting": waiting, "firing_since": _when(since)})


def no_worker(queue: str, age: float, waiting: int, since: datetime, *,
              resolved: bool = False) -> Alert:
    status = "resolved" if resolved else "firing"
    if resolved:
        title = f"Queue {queue} is served again"
        text = f"A live worker serves queue {queue} again."
    else:
        title = f"No live worker for queue {queue}"
        text = (f"Queue {queue} has {waiting} due job(s), the oldest waiting {age:.0f} s, and "
                f"no live worker serves it.")
    return Alert(
        event="no_worker", subject=queue, status=status,
        dedup_key="",  # set by the throttle
        title=title, text=text, link=link("dashboard:workers"),
        data={"queue": queue, "oldest_age": round(age, 1), "waiting": waiting,
              "firing_since": _when(since)})


def scheduler_stalled(last_tick: datetime, age: float, holder: str, since: datetime, *,
                      resolved: bool = False) -> Alert:
    status = "resolved" if resolved else "firing"
    if resolved:
        title = "The scheduler is ticking again"
        text = f"The scheduler ({holder or 'unknown'}) ticked at {last_tick.isoformat()}."
    else:
        title = f"The scheduler has not ticked for {age:.0f} s"
        text = (f"The scheduler's last tick was at {last_tick.isoformat()} by "
                f"{holder or 'unknown'}: schedules are not firing, runs are not advancing.")
    return Alert(
        event="scheduler_stalled", subject="scheduler", status=status,
        dedup_key="",  # set by the throttle
        title=title, text=text, link=link("dashboard:overview"),
        data={"last_tick_at": _when(last_tick), "seconds_since_tick": round(age, 1),
              "holder": holder, "firing_since": _when(since)})


# -- overflow --------------------------------------------------------------------------------

EVENT_KINDS = ("dead_letter", "run_failed")  # counted per event; the others per subject
OVERFLOW_NOUNS = {
    "dead_letter": ("dead letters", "dashboard:dead-letters"),
    "run_failed": ("failed runs", "dashboard:runs"),
    "queue_backlog": ("backlogged queues", "dashboard:queues"),
    "no_worker": ("queues without a live worker", "dashboard:workers"),
}

def overflow(kind: str, count: int, counts: dict[str, int], since: datetime,
             until: datetime) -> Alert:
    """Events of `kind` beyond the window's budget of alerts, over several subjects."""
    seconds = max(0, round((until - since).total_seconds()))
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    listed = ", ".join(f"{subject} ({n})" for subject, n in top[:10])
    more = f" and {len(top) - 10} more" if len(top) > 10 else ""
    noun, where = OVERFLOW_NOUNS.get(kind, ("alerts", "dashboard:overview"))
    across = f" across {len(counts)} subjects" if kind in EVENT_KINDS else ""
    return Alert(
        event=kind, subject="*", summary=True,
        dedup_key=f"{kind}:overflow:{since.isoformat()}",
        title=f"{count} more {noun}{across}",
        text=f"{count} more {noun} in the last {seconds} s: {listed}{more}.",
        link=link(where),
        data={"count": count, "subjects": dict(top[:50]), "window_start": _when(since),
              "window_end": _when(until)})
