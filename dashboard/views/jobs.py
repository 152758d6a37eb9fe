"""Jobs: the filterable list, one job's whole story, single-job actions, edit-and-retry, and
triggering a task by hand.

The list is keyset-paged (`?after=<id>` / `?before=<id>`, the anchor's sort value looked up by
id), so a page costs the same on page 1 and page 10,000, and nothing counts the whole table.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from dashboard import actions
from dashboard.access import Access, access_for
from dashboard.explain import why_not_running
from dashboard.filters import SORTS, FilterError, JobFilter, is_id
from dashboard.masking import mask
from dashboard.models import AuditEntry
from dashboard.views.base import PAGE_SIZE, action, page, reason, render_page
from queues.conf import relay_settings
from queues.models import ACTIVE_STATES, DeadLetter, Job, JobState, QueuePause, Worker
from queues.registry import QUEUE_NAME_RE, registry

EXECUTIONS_SHOWN = 50  # newest attempts on the detail page; a job retried forever has more
HISTORY_SHOWN = 20  # operator actions on the detail page
RETRYABLE = (JobState.FAILED, JobState.DEAD_LETTER, JobState.CANCELLED)
SORT_COLUMNS = ("id", "run_at", "priority")
PREVIEW_CHARS = 100
SORT_LABELS = {
    "-id": "Newest first", "id": "Oldest first",
    "-run_at": "Run at, latest first", "run_at": "Run at, soonest first",
    "-priority": "Priority, highest first", "priority": "Priority, lowest first",
}
LETTER_REASONS = {
    DeadLetter.Reason.EXHAUSTED: "every allowed attempt failed",
    DeadLetter.Reason.NOT_RETRYABLE: "the error is not retryable",
    DeadLetter.Reason.LOST: "the last allowed attempt was lost (worker died or lease expired)",
}


# -- the list -----------------------------------------------------------------------------------

@page
def job_list(request: HttpRequest) -> HttpResponse:
    access = access_for(request)
    error: FilterError | None = None
    try:
        job_filter = JobFilter.from_params(request.GET)
        direction, anchor = _cursor(request)
    except FilterError as exc:
        job_filter, direction, anchor, error = JobFilter(), "", None, exc
    rows: list[Job] = []
    more = False
    if error is None:
        qs = (access.jobs(job_filter.apply(Job.objects.all())).select_related("worker")
              .defer("result", "progress", "backoff", "meta", "worker__tasks"))
        try:
            rows, more = _keyset(qs, job_filter.sort, direction, anchor)
        except FilterError as exc:
            error = exc
    for job in rows:
        job.preview = _preview(job)
    has_prev = direction == "after" or (direction == "before" and more)
    has_next = direction == "before" or (direction != "before" and more)
    if not direction:
        found = f"{PAGE_SIZE}+ matches" if more else (
            f"{len(rows)} match{'es' if len(rows) != 1 else ''}")
    else:
        found = f"{len(rows)} on this page"
    bulk_actions = [a for a in ("retry", "discard", "cancel") if access.can_any(a)]
    return render_page(request, "dashboard/jobs/list.html", {
        "filter": job_filter, "error": error, "jobs": rows, "found": found,
        "next_url": f"?{job_filter.querystring(after=rows[-1].pk)}"
        if has_next and rows else None,
        "prev_url": f"?{job_filter.querystring(before=rows[0].pk)}"
        if has_prev and rows else None,
        "first_url": f"?{job_filter.querystring()}" if direction else None,
        "form": _form_values(request), "states": JobState.choices,
        "sorts": [(s, SORT_LABELS.get(s, s)) for s in SORTS], "sort_links": _sort_links(job_filter),
        "queue_names": _queue_names(access), "task_names": registry.names(),
        "bulk_actions": bulk_actions, "filter_query": job_filter.querystring(),
    })


def _cursor(request: HttpRequest) -> tuple[str, int | None]:
    for direction in ("after", "before"):
        raw = request.GET.get(direction, "").strip()
        if raw:
            if not is_id(raw):
                raise FilterError(direction, f"{raw!r} is not a job id")
            return direction, int(raw)
    return "", None


def _keyset(qs: QuerySet, sort: str, direction: str,
            anchor: int | None) -> tuple[list[Job], bool]:
    """One page in the filter's order after (or before) the anchor job, and whether there is
    more beyond it. Every sort ends in id, so (value, id) is a total order."""
    order = SORTS[sort]
    field = order[0].lstrip("-")
    if anchor is not None:
        descending = order[0].startswith("-")
        op = "lt" if descending == (direction == "after") else "gt"
        if field == "id":
            qs = qs.filter(**{f"id__{op}": anchor})
        else:
            # The anchor's value as stored, compared in the database: SQLite keeps datetimes
            # as text, and a value round-tripped through Python may not compare equal.
            value = Subquery(Job.objects.filter(pk=anchor).values(field)[:1])
            qs = qs.filter(Q(**{f"{field}__{op}": value})
                           | Q(**{field: value, f"id__{op}": anchor}))
    if direction == "before":
        qs = qs.order_by(*[o[1:] if o.startswith("-") else f"-{o}" for o in order])
    rows = list(qs[: PAGE_SIZE + 1])
    if (not rows and anchor is not None and field != "id"
            and not Job.objects.filter(pk=anchor).exists()):
        raise FilterError(direction, f"job #{anchor} (the page's anchor) no longer exists; "
                                     f"start again from the first page")
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    if direction == "before":
        rows.reverse()
    return rows, more


def _sort_links(job_filter: JobFilter) -> dict[str, dict[str, str]]:
    from dashboard.filters import UNFINISHED

    links = {}
    for column in SORT_COLUMNS:
        if column != "id" and not (job_filter.states and set(job_filter.states) <= UNFINISHED):
            continue  # only unfinished jobs sort by other columns
        if job_filter.sort == f"-{column}":
            target, arrow = column, "↓"
        elif job_filter.sort == column:
            target, arrow = f"-{column}", "↑"
        else:
            target, arrow = f"-{column}", ""
        links[column] = {"url": f"?{job_filter.querystring(sort=target)}", "arrow": arrow}
    return links


def _form_values(request: HttpRequest) -> dict[str, Any]:
    """What the user typed, even when it did not parse: the form shows it back."""
    get = request.GET
    lists = {name: get.getlist(name) or [""] for name in ("queue", "task", "worker", "tag", "arg")}
    return {**lists, "state": get.getlist("state"), "since": get.get("since", ""),
            "until": get.get("until", ""), "q": get.get("q", ""),
            "sort": get.get("sort", "-id")}


def _queue_names(access: Access) -> list[str]:
    """Queue names for the filter's suggestions, without scanning jobs: the tasks' queues,
    the live workers' queues and paused queues."""
    names = {relay_settings().DEFAULT_QUEUE}
    names |= {t.queue for t in registry if t.queue}
    for queues in Worker.objects.filter(state=Worker.State.RUNNING).values_list("queues",
                                                                                flat=True):
        names |= set(queues or [])
    names |= set(QueuePause.objects.values_list("queue", flat=True))
    return access.queues(sorted(names))


def _preview(job: Job) -> str:
    """`1, "x", customer_id=42, api_key="••••••"`: the arguments in one short line."""
    parts = [json.dumps(v, ensure_ascii=False, default=str) for v in mask(job.args or [])]
    parts += [f"{k}={json.dumps(v, ensure_ascii=False, default=str)}"
              for k, v in mask(job.kwargs or {}).items()]
    text = ", ".join(parts)
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


# -- the detail page ----------------------------------------------------------------------------

def _visible_job(request: HttpRequest, job_id: int) -> Job:
    """The job, if it exists and the user may see it; 404 otherwise (a hidden job's existence
    is not revealed)."""
    access = access_for(request)
    job = access.jobs(Job.objects.filter(pk=job_id)).select_related("worker").first()
    if job is None:
        raise Http404(f"No job #{job_id}")
    return job


@page
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = _visible_job(request, job_id)
    executions = list(job.executions.select_related("worker").order_by("-id")
                      [: EXECUTIONS_SHOWN + 1])
    hidden_executions = 0
    if len(executions) > EXECUTIONS_SHOWN:
        executions = executions[:EXECUTIONS_SHOWN]
        hidden_executions = job.executions.count() - EXECUTIONS_SHOWN
    letters = list(job.dead_letters.select_related("resolved_by").order_by("-id")[:20])
    for letter in letters:
        letter.why = LETTER_REASONS.get(letter.reason, letter.reason)
    open_letter = next((d for d in letters if d.resolved_at is None), None)
    history = list(
        AuditEntry.objects.filter(object_type="job", at__gte=job.created_at,
                                  object_ids__icontains=json.dumps(str(job.pk)))
        .order_by("-id")[:HISTORY_SHOWN])
    reruns = [e.details.get("new_job") for e in history
              if e.action == "job.rerun" and e.object_ids[:1] == [str(job.pk)]
              and e.details.get("new_job")]
    meta = job.meta or {}
    return render_page(request, "dashboard/jobs/detail.html", {
        "job": job, "executions": executions, "hidden_executions": hidden_executions,
        "open_letter": open_letter, "resolved_letters": [d for d in letters if d.resolved_at],
        "history": history, "reruns": reruns,
        "run_id": meta.get("workflow_run"), "step": meta.get("step"),
        "workflow": meta.get("workflow"), "rerun_of": meta.get("rerun_of"),
        "triggered_by": meta.get("triggered_by"),
        "reasons": why_not_running(job), "states": _state_allows(job, open_letter),
        "live": not job.is_finished,
    })


def _state_allows(job: Job, open_letter: Any) -> dict[str, bool]:
    """Which actions the job's state allows (permission is checked separately)."""
    return {
        "cancel": job.state in ACTIVE_STATES and not (
            job.state == JobState.RUNNING and job.cancel_requested_at),
        "retry": job.state in RETRYABLE,
        "discard": job.state == JobState.DEAD_LETTER and open_letter is not None,
        "rerun": job.is_finished,
    }


# -- single-job actions -------------------------------------------------------------------------

def _to_job(request: HttpRequest, message: str, job_id: int) -> HttpResponse:
    messages.success(request, message)
    target = reverse("dashboard:job", args=[job_id])
    if getattr(request, "htmx", False):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = target
        return response
    return HttpResponseRedirect(target)


@action
def cancel(request: HttpRequest, actor: actions.Actor, job_id: int) -> HttpResponse:
    job = actions.cancel_job(actor, job_id, reason(request))
    if job.state == JobState.CANCELLED:
        return _to_job(request, f"Job #{job.pk} cancelled.", job.pk)
    return _to_job(request, f"Cancel requested: the worker running job #{job.pk} stops it "
                            f"within a heartbeat.", job.pk)


@action
def retry(request: HttpRequest, actor: actions.Actor, job_id: int) -> HttpResponse:
    job = actions.retry_job(actor, job_id, reason(request))
    return _to_job(request, f"Job #{job.pk} is queued again.", job.pk)


@action
def discard(request: HttpRequest, actor: actions.Actor, job_id: int) -> HttpResponse:
    job = actions.discard_job(actor, job_id, reason(request))
    return _to_job(request, f"Dead letter of job #{job.pk} discarded.", job.pk)


@action
def rerun(request: HttpRequest, actor: actions.Actor, job_id: int) -> HttpResponse:
    new = actions.rerun_job(actor, job_id, reason(request))
    return _to_job(request, f"Job #{job_id} rerun as job #{new.pk}.", new.pk)


# -- edit arguments, then retry -----------------------------------------------------------------

@require_http_methods(["GET", "POST"])
@page
def edit_retry(request: HttpRequest, job_id: int) -> HttpResponse:
    """A form with the job's arguments as JSON (secrets masked; a value left masked keeps its
    stored secret); saving retries the job with the edited arguments."""
    access = access_for(request)
    job = _visible_job(request, job_id)
    if not access.can_job("retry", job):
        raise PermissionDenied(f"You may not retry job #{job.pk} (queue {job.queue})")
    errors: dict[str, str] = {}
    status = 200
    if job.state not in RETRYABLE:
        errors["form"] = (f"Job #{job.pk} is {job.state}; only failed, dead-lettered or "
                             f"cancelled jobs can be edited and retried.")
        status = 409
    if request.method == "POST":
        form = {"args": request.POST.get("args", ""), "kwargs": request.POST.get("kwargs", ""),
                "reason": reason(request)}
        args = _parse_json(form["args"] or "[]", "args", list, "a JSON list, e.g. [1, \"x\"]",
                           errors)
        kwargs = _parse_json(form["kwargs"] or "{}", "kwargs", dict,
                             "a JSON object, e.g. {\"customer_id\": 42}", errors)
        if not errors:
            try:
                job = actions.retry_job(actions.actor_from_request(request), job.pk,
                                        form["reason"], args=args, kwargs=kwargs)
            except actions.ActionError as exc:
                errors["form"] = str(exc)
            else:
                return _to_job(request, f"Job #{job.pk} is queued again with the edited "
                                        f"arguments.", job.pk)
        status = 400 if status == 200 else status
    else:
        form = {"args": json.dumps(mask(job.args), indent=2, ensure_ascii=False),
                "kwargs": json.dumps(mask(job.kwargs), indent=2, ensure_ascii=False),
                "reason": ""}
    response = render_page(request, "dashboard/jobs/edit_retry.html",
                           {"job": job, "form": form, "errors": errors})
    response.status_code = status
    return response


def _parse_json(text: str, name: str, kind: type, example: str, errors: dict[str, str]) -> Any:
    try:
        value = json.loads(text)
    except ValueError as exc:
        errors[name] = f"Not valid JSON: {exc}"
        return None
    if not isinstance(value, kind):
        errors[name] = f"Must be {example}, not {type(value).__name__}"
        return None
    return value


# -- trigger a task -----------------------------------------------------------------------------

@require_http_methods(["GET", "POST"])
@page
def enqueue_form(request: HttpRequest) -> HttpResponse:
    access = access_for(request)
    if not access.can_any("trigger"):
        raise PermissionDenied("You may not trigger tasks")
    names = registry.names()
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        form = {"task": request.POST.get("task", "").strip(),
                "queue": request.POST.get("queue", "").strip(),
                "kwargs": request.POST.get("kwargs", ""), "reason": reason(request)}
        task = registry.get(form["task"]) if form["task"] in registry else None
        if task is None:
            errors["task"] = ("Choose a task." if not form["task"] else
                              f"No task named {form['task']!r} is registered.")
        if form["queue"] and not QUEUE_NAME_RE.match(form["queue"]):
            errors["queue"] = ("1-100 letters, digits and _ . : - starting with a letter or "
                               "digit (leave empty for the task's own queue).")
        kwargs = _parse_json(form["kwargs"].strip() or "{}", "kwargs", dict,
                             "a JSON object of keyword arguments, e.g. {\"customer_id\": 42}",
                             errors)
        if task is not None and kwargs is not None:
            problem = task.argument_problem(kwargs=kwargs)
            if problem:
                errors["kwargs"] = problem
        if not errors:
            try:
                job = actions.enqueue_task(actions.actor_from_request(request), form["task"],
                                           kwargs, queue=form["queue"] or None,
                                           reason=form["reason"])
            except actions.ActionError as exc:
                errors["form"] = str(exc)
            else:
                return _to_job(request, f"Task {job.task} enqueued as job #{job.pk} in queue "
                                        f"{job.queue}.", job.pk)
        status = 400
    else:
        form = {"task": request.GET.get("task", ""), "queue": "", "kwargs": "{}", "reason": ""}
    tasks = [_task_info(registry.get(n)) for n in names]
    return _status(render_page(request, "dashboard/jobs/enqueue.html", {
        "form": form, "errors": errors, "tasks": tasks,
        "default_queue": relay_settings().DEFAULT_QUEUE}), status)


def _status(response: HttpResponse, status: int) -> HttpResponse:
    response.status_code = status
    return response


def _describe(signature: inspect.Signature) -> str:
    """`(customer_id: int, force: bool = False)`: annotations as written, without quotes."""
    parts = []
    for param in signature.parameters.values():
        text = param.name
        if param.kind is param.VAR_POSITIONAL:
            text = f"*{text}"
        elif param.kind is param.VAR_KEYWORD:
            text = f"**{text}"
        if param.annotation is not param.empty:
            annotation = param.annotation
            if not isinstance(annotation, str):
                annotation = inspect.formatannotation(annotation)
            text += f": {annotation}"
        if param.default is not param.empty:
            text += f" = {param.default!r}"
        parts.append(text)
    return f"({', '.join(parts)})"


def _task_info(task: Any) -> dict[str, Any]:
    signature = task.parameters()
    doc = inspect.getdoc(task.func) or ""
    return {"name": task.name, "queue": task.queue or relay_settings().DEFAULT_QUEUE,
            "signature": _describe(signature) if signature is not None else "(…)",
            "doc": doc.split("\n\n")[0].replace("\n", " ")}
