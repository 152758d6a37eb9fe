"""Workflow definitions: every workflow with its versions, one version's source and graph,
a diff between two versions, and a form that starts a run with JSON input."""

from __future__ import annotations

import difflib
import json
from typing import Any

import yaml
from django.db.models import Count, Max, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from dashboard import actions
from dashboard.access import access_for
from dashboard.graph import layout
from dashboard.masking import mask, unmask
from dashboard.views.base import page, reason, render_page
from scheduler.definitions import Workflow
from scheduler.models import Schedule, WorkflowDefinition, WorkflowRun

RECENT_RUNS = 10
MAX_INPUT = 200_000  # characters of JSON a start form accepts
# The list and the version table never need the big columns.
_SUMMARY = ("id", "name", "version", "description", "content_hash", "source_file",
            "git_commit", "created_by", "created_at")


def _versions(request: HttpRequest, name: str):
    """The workflow's versions the user may see, newest first; 404 when there are none."""
    qs = access_for(request).definitions(WorkflowDefinition.objects.filter(name=name))
    versions = list(qs.only(*_SUMMARY).order_by("-version"))
    if not versions:
        raise Http404(f"No workflow named {name!r}")
    for newer, older in zip(versions, [*versions[1:], None], strict=True):
        newer.previous = older.version if older else None
    return versions


def _version(request: HttpRequest, name: str, raw: str | None) -> WorkflowDefinition:
    """One version, whole (spec and source); the newest when `raw` is empty. 404 otherwise."""
    qs = access_for(request).definitions(WorkflowDefinition.objects.filter(name=name))
    if raw in (None, ""):
        found = qs.order_by("-version").first()
    else:
        if not str(raw).isdigit():
            raise Http404(f"{raw!r} is not a version number")
        found = qs.filter(version=int(raw)).first()
    if found is None:
        raise Http404(f"No version {raw} of workflow {name!r}")
    return found


def source_of(definition: WorkflowDefinition) -> str:
    """The file as applied; a definition stored without one shows its spec as YAML."""
    if definition.source_text:
        return definition.source_text
    return yaml.safe_dump(definition.spec, sort_keys=False, allow_unicode=True)


@page
def definition_list(request: HttpRequest) -> HttpResponse:
    access = access_for(request)
    defs = access.definitions(WorkflowDefinition.objects.all())
    summary = list(defs.values("name").annotate(latest=Max("version"), versions=Count("id"))
                   .order_by("name"))
    latest: dict[str, WorkflowDefinition] = {}
    if summary:
        pairs = Q()
        for row in summary:
            pairs |= Q(name=row["name"], version=row["latest"])
        latest = {d.name: d for d in defs.filter(pairs).only(*_SUMMARY)}
    ids_by_name: dict[str, list[int]] = {}
    for pk, name in defs.values_list("id", "name"):
        ids_by_name.setdefault(name, []).append(pk)
    schedules: dict[str, list[Schedule]] = {}
    for schedule in access.schedules(Schedule.objects.filter(
            target_kind=Schedule.Target.WORKFLOW, target__in=list(ids_by_name))):
        schedules.setdefault(schedule.target, []).append(schedule)
    workflows = []
    for row in summary:
        name = row["name"]
        # One indexed lookup per workflow (runs by definition, newest first); there are
        # few workflows, and this never scans the runs table.
        last_run = (WorkflowRun.objects.filter(definition_id__in=ids_by_name[name])
                    .order_by("-id").only("id", "state", "created_at", "definition_id").first())
        workflows.append({
            "name": name, "latest": latest.get(name), "versions": row["versions"],
            "last_run": last_run, "schedules": schedules.get(name, []),
            "may_start": access.can("trigger", workflow=name),
        })
    return render_page(request, "dashboard/workflows/list.html", {"workflows": workflows})


@page
def definition_detail(request: HttpRequest, name: str) -> HttpResponse:
    access = access_for(request)
    versions = _versions(request, name)
    selected = _version(request, name, request.GET.get("version"))
    flow = Workflow(selected.spec)
    older = [v for v in versions if v.version < selected.version]
    runs = list(access.runs(WorkflowRun.objects.filter(definition__name=name))
                .select_related("definition").only("id", "state", "triggered_by", "created_at",
                                                   "finished_at", "definition__version",
                                                   "definition__name")
                .order_by("-id")[:RECENT_RUNS])
    schedules = list(access.schedules(Schedule.objects.filter(
        target_kind=Schedule.Target.WORKFLOW, target=name)))
    context = {
        "name": name, "versions": versions, "selected": selected,
        "source": source_of(selected), "graph": layout(flow),
        "graph_label": f"Steps of {name} version {selected.version}",
        "input_schema": flow.input_schema(), "input_defaults": flow.input_defaults(),
        "diff_a": older[0].version if older else selected.version,
        "diff_b": selected.version, "runs": runs, "schedules": schedules,
        "latest": versions[0], "may_start": access.can("trigger", workflow=name),
    }
    return render_page(request, "dashboard/workflows/detail.html", context)


def diff_lines(old: str, new: str, old_label: str, new_label: str) -> list[dict[str, str]]:
    """A unified diff as lines tagged add / del / hunk / meta / context (text unescaped:
    the template escapes it)."""
    lines = []
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), old_label, new_label,
                                     lineterm="", n=3):
        if line.startswith(("+++", "---")):
            kind = "meta"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "context"
        lines.append({"kind": kind, "text": line})
    return lines


@page
def diff(request: HttpRequest, name: str) -> HttpResponse:
    versions = _versions(request, name)
    a = _version(request, name, request.GET.get("a") or "")
    b = _version(request, name, request.GET.get("b") or "")
    lines = diff_lines(source_of(a), source_of(b), f"{name} v{a.version}",
                       f"{name} v{b.version}")
    context = {
        "name": name, "a": a, "b": b, "versions": versions, "lines": lines,
        "added": sum(1 for line in lines if line["kind"] == "add"),
        "removed": sum(1 for line in lines if line["kind"] == "del"),
    }
    return render_page(request, "dashboard/workflows/diff.html", context)


def _placeholder(schema: dict[str, Any]) -> Any:
    """A value of the right JSON type for a required field the defaults do not give."""
    if "default" in schema:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    return {"integer": 0, "number": 0, "boolean": False, "array": [], "object": {},
            "null": None}.get(kind, "")


def prefill(flow: Workflow) -> dict[str, Any]:
    """The start form's first input: the defaults, plus a blank for each required field."""
    data = flow.input_defaults()
    schema = flow.input_schema() or {}
    properties = schema.get("properties") or {}
    for field in schema.get("required") or []:
        if field not in data:
            data[field] = _placeholder(properties.get(field) or {})
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


@page
def start(request: HttpRequest, name: str) -> HttpResponse:
    """GET: the form. POST: start a run (through dashboard.actions, which checks the trigger
    permission again and writes the audit entry) and show it; errors go back into the form."""
    access = access_for(request)
    latest = _version(request, name, "")
    access.require("trigger", workflow=name)
    flow = Workflow(latest.spec)
    defaults = flow.input_defaults()
    error = ""
    status = 200
    if request.method == "POST":
        text = request.POST.get("input", "")
        why = reason(request)
        data: Any = None
        if len(text) > MAX_INPUT:
            error = f"The input is longer than {MAX_INPUT} characters"
        else:
            try:
                data = json.loads(text, parse_constant=_no_constant) if text.strip() else {}
            except ValueError as exc:
                error = f"The input is not valid JSON: {exc}"
        if not error and not isinstance(data, dict):
            error = f"The input must be a JSON object, not {type(data).__name__}"
        if not error:
            # Values left masked in the form keep the default they stand for.
            data = unmask(data, defaults)
            try:
                run = actions.start_workflow(actions.actor_from_request(request), name, data,
                                             why)
            except actions.ActionError as exc:
                error = str(exc)
            else:
                from django.contrib import messages

                messages.success(request, f"Started run #{run.pk} of {name} "
                                          f"v{run.definition.version}.")
                return HttpResponseRedirect(reverse("dashboard:run", args=[run.pk]))
        status = 400
    else:
        text = json.dumps(mask(prefill(flow)), indent=2, sort_keys=True, ensure_ascii=False)
        why = ""
    context = {
        "name": name, "definition": latest, "input_text": text, "reason": why,
        "error": error, "input_schema": flow.input_schema(), "input_defaults": defaults,
    }
    response = render_page(request, "dashboard/workflows/start.html", context)
    response.status_code = status
    return response
