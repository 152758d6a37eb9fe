"""Bulk actions on jobs: a selection at once, or every job matching a filter after a
confirmation page that shows the exact count; large matches run in the background
(dashboard.tasks) and `bulk_status` follows them.

POST /dashboard/jobs/bulk/ fields: action (retry | discard | cancel), reason, next, and either
ids (the selection; scope=selection or no scope) or scope=filter + filter (the list page's
query string). With scope=filter the first POST renders the confirmation; the second carries
confirm=1 and the count the operator saw (expected), and acts.
"""

from __future__ import annotations

from collections import Counter

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404
from django.urls import reverse

from dashboard import actions
from dashboard.access import access_for
from dashboard.filters import FilterError
from dashboard.fingerprints import filter_from_params, normalise
from dashboard.models import BulkOperation
from dashboard.views.base import action, back, done, page, reason, render_page
from queues.conf import relay_settings
from queues.models import Job

VERBS = {"retry": "Retried", "discard": "Discarded", "cancel": "Cancelled"}
MAX_SELECTION = 1000  # ids in one POST; more is what "all matching this filter" is for


@action
def bulk(request: HttpRequest, actor: actions.Actor) -> HttpResponse:
    name = request.POST.get("action", "")
    if name not in actions.BULK_ACTIONS:
        raise actions.ActionError("Choose an action: retry, discard or cancel")
    if not actor.access.can_any(name):
        # Before anything is counted or shown: the confirmation page is not for them either.
        raise PermissionDenied(f"You may not {name}")
    why = reason(request)
    if request.POST.get("scope") == "filter":
        return _bulk_filter(request, actor, name, why)
    ids = _ids(request)
    result = actions.bulk_jobs(actor, name, ids=ids, reason=why)
    return _finish(request, name, result)


def _ids(request: HttpRequest) -> list[int]:
    raw = request.POST.getlist("ids")
    if not raw:
        raise actions.ActionError("Select at least one job first")
    if len(raw) > MAX_SELECTION:
        raise actions.ActionError(f"Select at most {MAX_SELECTION} jobs, or act on all jobs "
                                  f"matching the filter")
    try:
        return sorted({int(value) for value in raw})
    except ValueError:
        raise actions.ActionError("The selection holds something that is not a job id") from None


def _bulk_filter(request: HttpRequest, actor: actions.Actor, name: str,
                 why: str) -> HttpResponse:
    raw = request.POST.get("filter", "")
    try:
        job_filter = filter_from_params(QueryDict(raw))
    except FilterError as exc:
        raise actions.ActionError(f"Filter {exc.field}: {exc.message}") from None
    if job_filter.fingerprint:
        raise actions.ActionError("Retry a failure group from the failure groups page")
    if job_filter.is_empty:
        raise actions.ActionError("Narrow the list with a filter first: a bulk action on "
                                  "every job is refused")
    count = actor.access.jobs(job_filter.apply(Job.objects.all())).count()
    shown = request.POST.get("expected", "")
    if request.POST.get("confirm") != "1" or shown != str(count):
        # Show the exact count first; ask again if it changed since the operator looked.
        return render_page(request, "dashboard/failures/bulk_confirm.html", {
            "action_name": name, "verb": name.capitalize(), "count": count,
            "count_text": f"{count:,}",
            "changed_from": shown if request.POST.get("confirm") == "1" and shown else None,
            "filter_raw": job_filter.querystring(), "description": _describe(job_filter),
            "reason": why, "next": request.POST.get("next", ""),
            "inline_limit": relay_settings().BULK_INLINE_LIMIT,
            "jobs_url": f"{reverse('dashboard:jobs')}?{job_filter.querystring()}",
        })
    if count == 0:
        raise actions.ActionError("No job matches this filter any more")
    result = actions.bulk_jobs(actor, name, job_filter=job_filter, reason=why)
    return _finish(request, name, result)


def _describe(job_filter) -> str:
    """`state=dead_letter queue=reports` -- the filter as the operator would write it."""
    parts = []
    for key, value in job_filter.params().items():
        for item in value if isinstance(value, list) else [value]:
            parts.append(f"{key}={item}")
    return " ".join(parts)


def summary(name: str, result: actions.BulkResult) -> str:
    """"Retried 10, skipped 2 (2 x Job #<n> is success; ...)": reasons grouped."""
    text = f"{VERBS.get(name, name)} {len(result.done)}"
    if result.skipped:
        reasons = Counter(normalise(why) for why in result.skipped.values())
        listed = "; ".join(f"{n} x {why}" for why, n in reasons.most_common(3))
        more = " …" if len(reasons) > 3 else ""
        text += f", skipped {len(result.skipped)} ({listed}{more})"
    return text + "."


def _finish(request: HttpRequest, name: str, result: actions.BulkResult) -> HttpResponse:
    if result.operation is not None:
        op = result.operation
        messages.success(request, f"{op.expected:,} jobs to {name}: working through them in "
                                  f"the background (operation #{op.pk}).")
        return to_operation(request, op)
    if result.done:
        return done(request, summary(name, result), "dashboard:jobs")
    messages.warning(request, summary(name, result))
    return back(request, "dashboard:jobs")


def to_operation(request: HttpRequest, op: BulkOperation) -> HttpResponse:
    target = reverse("dashboard:bulk-operation", args=[op.pk])
    if getattr(request, "htmx", False):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = target
        return response
    return HttpResponseRedirect(target)


@page
def bulk_status(request: HttpRequest, operation_id: int) -> HttpResponse:
    access = access_for(request)
    op = get_object_or_404(BulkOperation.objects.select_related("created_by"), pk=operation_id)
    if not access.sees_everything and op.created_by_id != request.user.pk:
        raise Http404("No such operation")
    handled = op.done + op.skipped
    percent = min(100, round(100 * handled / op.expected)) if op.expected else (
        100 if op.state == BulkOperation.State.DONE else 0)
    query = QueryDict(mutable=True)
    for key, value in (op.filter or {}).items():
        query.setlist(key, [str(v) for v in (value if isinstance(value, list) else [value])])
    return render_page(request, "dashboard/failures/bulk_status.html", {
        "op": op, "percent": percent, "handled": handled,
        "finished": op.state in (BulkOperation.State.DONE, BulkOperation.State.FAILED),
        "filter_description": " ".join(f"{k}={v}" for k, vs in query.lists() for v in vs),
        "jobs_url": f"{reverse('dashboard:jobs')}?{query.urlencode()}",
    })
