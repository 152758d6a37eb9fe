"""Dead letters (open, or resolved with who/when/why) and failure groups with "retry this
group". Bulk retry/discard posts to dashboard.views.bulk."""

from __future__ import annotations

import time

from django.contrib import messages
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

from dashboard import actions, fingerprints
from dashboard.access import access_for
from dashboard.filters import FilterError, JobFilter
from dashboard.fingerprints import DeadLetterFilter
from dashboard.views.base import PAGE_SIZE, action, back, done, page, reason, render_page
from dashboard.views.bulk import summary, to_operation
from queues.models import DeadLetter, Job, JobState

SHOW = {"open": "open", "resolved": "resolved", "all": "all"}
GROUPS_CACHE_AFTER = 0.25  # seconds: a report slower than this is kept ...
GROUPS_CACHE_SECONDS = 15  # ... this long
MESSAGE_CHARS = 300  # of an error message in a list row; the job page has all of it


@page
def dead_letters(request: HttpRequest) -> HttpResponse:
    access = access_for(request)
    show = request.GET.get("show", "open")
    show = show if show in SHOW else "open"
    error: FilterError | None = None
    after: int | None = None
    try:
        job_filter = JobFilter.from_params(request.GET)
        raw_after = request.GET.get("after", "").strip()
        if raw_after:
            if not raw_after.isdigit():
                raise FilterError("after", f"{raw_after!r} is not a dead letter id")
            after = int(raw_after)
    except FilterError as exc:
        job_filter, error = JobFilter(), exc
    rows: list[DeadLetter] = []
    more = False
    if error is None:
        qs = DeadLetter.objects.select_related("job", "resolved_by").defer(
            "job__result", "job__progress", "job__backoff", "job__args", "job__kwargs")
        if show == "open":
            qs = qs.filter(resolved_at__isnull=True, job__state=JobState.DEAD_LETTER)
        elif show == "resolved":
            qs = qs.filter(resolved_at__isnull=False)
        if not job_filter.is_empty or not access.sees_everything:
            jobs = access.jobs(job_filter.apply(Job.objects.all())).order_by()
            qs = qs.filter(job_id__in=jobs.values("id"))
        if after is not None:
            qs = qs.filter(id__lt=after)
        rows = list(qs.order_by("-id")[: PAGE_SIZE + 1])
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
    for letter in rows:
        letter.actionable = letter.resolved_at is None and letter.job.state == JobState.DEAD_LETTER
    bulk_actions = [a for a in ("retry", "discard") if access.can_any(a)]
    # "All matching": the dead letters this page lists, for the bulk action's own filter.
    bulk_filter = DeadLetterFilter(**{k: v for k, v in vars(job_filter).items()})
    bulk_filter.open_dead_letter = True
    if not bulk_filter.states:
        bulk_filter.states = [JobState.DEAD_LETTER]
    return render_page(request, "dashboard/failures/dead_letters.html", {
        "letters": rows, "more": more, "show": show, "error": error, "filter": job_filter,
        "after": after, "next_after": rows[-1].pk if more and rows else None,
        "bulk_actions": bulk_actions, "bulk_filter": bulk_filter.querystring(),
        "message_chars": MESSAGE_CHARS,
        "can_bulk_filter": show == "open" and bool(rows) and error is None,
        "form": {k: request.GET.get(k, "") for k in ("queue", "task", "q", "since", "until")},
    })


@page
def groups(request: HttpRequest) -> HttpResponse:
    access = access_for(request)
    window = request.GET.get("window", fingerprints.DEFAULT_WINDOW)
    if window not in fingerprints.WINDOWS:
        messages.warning(request, f"Unknown window {window!r}; showing the last "
                                  f"{fingerprints.DEFAULT_WINDOW}.")
        window = fingerprints.DEFAULT_WINDOW
    report = _groups_report(request, window)
    return render_page(request, "dashboard/failures/groups.html", {
        "report": report, "window": window, "windows": list(fingerprints.WINDOWS),
        "max_messages": fingerprints.MAX_MESSAGES, "may_retry": access.can_any("retry"),
    })


def _groups_key(request: HttpRequest, window: str) -> str:
    access = access_for(request)
    who = "all" if access.sees_everything else f"user-{request.user.pk}"
    return f"relay:failure-groups:{window}:{who}:{fingerprints.MAX_MESSAGES}"


def _groups_report(request: HttpRequest, window: str) -> fingerprints.GroupReport:
    """The report, kept GROUPS_CACHE_SECONDS when it was slow to compute (a database with
    many failures), so the live refresh of every open tab does not aggregate again and
    again; small databases always get fresh figures. A group retry drops the cached copy."""
    key = _groups_key(request, window)
    report = cache.get(key)
    if report is None:
        started = time.monotonic()
        report = fingerprints.groups(window=window, access=access_for(request))
        if time.monotonic() - started > GROUPS_CACHE_AFTER:
            cache.set(key, report, GROUPS_CACHE_SECONDS)
    return report


@action
def retry_group(request: HttpRequest, actor: actions.Actor) -> HttpResponse:
    fingerprint = request.POST.get("fingerprint", "").strip()
    window = request.POST.get("window", fingerprints.DEFAULT_WINDOW)
    result = actions.retry_failure_group(actor, fingerprint, reason(request), window)
    for name in fingerprints.WINDOWS:
        cache.delete(_groups_key(request, name))
    if result.operation is not None:
        messages.success(request, f"{result.operation.expected:,} dead letters of failure "
                                  f"group {fingerprint}: retrying them in the background.")
        return to_operation(request, result.operation)
    text = f"Failure group {fingerprint}: {summary('retry', result)}"
    if not result.done:
        messages.warning(request, text)
        return back(request, "dashboard:failures")
    return done(request, text, "dashboard:failures")
