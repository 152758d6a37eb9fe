"""Workflow runs: a filtered list, and one run with its step graph, steps, cancel and rerun."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone

from dashboard import actions
from dashboard.access import access_for
from dashboard.filters import FilterError, parse_time
from dashboard.graph import layout
from dashboard.views.base import PAGE_SIZE, action, done, page, reason, render_page
from scheduler.definitions import Workflow
from scheduler.models import (
    RUN_ACTIVE_STATES,
    RunState,
    StepRun,
    WorkflowDefinition,
    WorkflowRun,
)

# Large columns a list never shows.
_LIST_DEFER = ("input", "definition__spec", "definition__source_text",
               "definition__description", "schedule__input")


def _duration(run: Any) -> Any:
    if not run.started_at:
        return None
    return (run.finished_at or timezone.now()) - run.started_at


def _parse_filters(params: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """The URL's filters as given (for the form) and as parsed. Raises FilterError."""
    raw = {name: params.get(name, "").strip()[:200]
           for name in ("workflow", "state", "triggered_by", "since", "after")}
    parsed: dict[str, Any] = {}
    if raw["state"]:
        if raw["state"] not in RunState.values:
            raise FilterError("state", f"unknown state {raw['state']!r} (one of "
                                       f"{', '.join(RunState.values)})")
        parsed["state"] = raw["state"]
    if raw["since"]:
        parsed["since"] = parse_time("since", raw["since"])
    if raw["after"]:
        if not raw["after"].isdigit():
            raise FilterError("after", "must be a run id")
        parsed["after"] = int(raw["after"])
    return raw, parsed


def _filtered(qs: QuerySet, raw: dict[str, str], parsed: dict[str, Any]) -> QuerySet:
    if raw["workflow"]:
        # Definition ids first: the (definition, -id) index then serves the newest-first scan.
        ids = list(WorkflowDefinition.objects.filter(name=raw["workflow"])
                   .values_list("id", flat=True))
        qs = qs.filter(definition_id__in=ids)
    if "state" in parsed:
        qs = qs.filter(state=parsed["state"])
    if raw["triggered_by"]:
        qs = qs.filter(triggered_by__icontains=raw["triggered_by"])
    if "since" in parsed:
        qs = qs.filter(created_at__gte=parsed["since"])
    if "after" in parsed:
        qs = qs.filter(id__lt=parsed["after"])
    return qs


def step_counts(run_ids: list[int]) -> dict[int, dict[str, int]]:
    """{run id: {step state: count}} for a page of runs, in one query."""
    counts: dict[int, dict[str, int]] = {}
    for row in (StepRun.objects.filter(run_id__in=run_ids).values("run_id", "state")
                .annotate(n=Count("id")).order_by()):
        counts.setdefault(row["run_id"], {})[row["state"]] = row["n"]
    return counts


@page
def run_list(request: HttpRequest) -> HttpResponse:
    access = access_for(request)
    error = ""
    try:
        raw, parsed = _parse_filters(request.GET)
    except FilterError as exc:
        raw = {name: request.GET.get(name, "")[:200]
               for name in ("workflow", "state", "triggered_by", "since", "after")}
        parsed, error = {}, str(exc)
    runs: list[WorkflowRun] = []
    more = False
    if not error:
        qs = access.runs(WorkflowRun.objects.all())
        qs = (_filtered(qs, raw, parsed).select_related("definition", "schedule")
              .defer(*_LIST_DEFER).order_by("-id"))
        runs = list(qs[:PAGE_SIZE + 1])
        more = len(runs) > PAGE_SIZE
        runs = runs[:PAGE_SIZE]
    counts = step_counts([r.pk for r in runs])
    for run in runs:
        run.duration = _duration(run)
        run.step_counts = sorted(counts.get(run.pk, {}).items())
        run.step_total = sum(counts.get(run.pk, {}).values())
    names = list(access.definitions(WorkflowDefinition.objects.all())
                 .order_by("name").values_list("name", flat=True).distinct())
    context = {
        "runs": runs, "filters": raw, "error": error, "states": RunState.values,
        "workflow_names": names, "next_after": runs[-1].pk if more and runs else None,
        "filtered": any(raw[k] for k in ("workflow", "state", "triggered_by", "since")),
    }
    response = render_page(request, "dashboard/runs/list.html", context)
    if error:
        response.status_code = 400
    return response


def visible_run(request: HttpRequest, run_id: int) -> WorkflowRun:
    """The run, if the user may see it; 404 otherwise (as if it did not exist)."""
    qs = access_for(request).runs(WorkflowRun.objects.select_related("definition", "schedule"))
    run = qs.filter(pk=run_id).first()
    if run is None:
        raise Http404(f"No run #{run_id}")
    return run


@page
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = visible_run(request, run_id)
    steps = list(StepRun.objects.filter(run=run).select_related("job")
                 .only("id", "run_id", "step_id", "group", "task", "state", "attempt", "input",
                       "output", "error", "started_at", "finished_at", "job_id",
                       "job__state", "job__attempts", "job__queue")
                 .order_by("id"))
    flow = Workflow(run.definition.spec)
    by_id = {s.step_id: s for s in steps}
    graph = layout(flow, by_id, job_url=lambda job_id: reverse("dashboard:job", args=[job_id]))
    # Steps in graph order (column, then row), so the table reads like the picture.
    position = {n.id: (n.layer, n.row) for n in graph.nodes}
    steps.sort(key=lambda s: position.get(s.step_id, (10**6, s.pk)))
    for step in steps:
        step.duration = _duration(step)
    run.duration = _duration(run)
    context = {
        "run": run, "steps": steps, "graph": graph,
        "graph_label": f"Steps of run #{run.pk} by state",
        "counts": sorted(step_counts([run.pk]).get(run.pk, {}).items()),
        "can_cancel": run.state in RUN_ACTIVE_STATES,
        "can_rerun": run.state in (RunState.FAILED, RunState.CANCELLED),
    }
    return render_page(request, "dashboard/runs/detail.html", context)


@action
def cancel(request: HttpRequest, actor: actions.Actor, run_id: int) -> HttpResponse:
    run = actions.cancel_run(actor, run_id, reason(request))
    return done(request, f"Run #{run.pk} cancelled: its steps were stopped.", "dashboard:runs")


@action
def rerun(request: HttpRequest, actor: actions.Actor, run_id: int) -> HttpResponse:
    run = actions.rerun_run(actor, run_id, reason(request))
    return done(request, f"Run #{run.pk} is running again (rerun {run.reruns}): its failed "
                         f"and cancelled steps and everything after them run again.",
                "dashboard:runs")
