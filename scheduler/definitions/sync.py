"""`plan()` and `apply()`: workflow files in, immutable versions out.

A new version is stored only when a workflow's content changed (the hash of its canonical
JSON); comments and formatting are not content. Runs in flight stay on the version they
started with; new runs and schedule firings use the newest. Nothing is stored when any file
is invalid.
"""

from __future__ import annotations

import difflib
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.db import transaction

from scheduler.definitions.errors import DefinitionError, InvalidDefinitions
from scheduler.definitions.loader import LoadedWorkflow, load
from scheduler.models import Schedule, WorkflowDefinition


@dataclass
class Change:
    name: str
    action: str  # "add", "change", "unchanged"
    file: str
    old_version: int | None = None
    new_version: int | None = None
    diff: str = ""
    schedule: str = ""  # what happens to its schedule, if anything


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    errors: list[DefinitionError] = field(default_factory=list)
    not_in_folder: list[str] = field(default_factory=list)  # stored workflows with no file

    @property
    def has_changes(self) -> bool:
        return any(c.action != "unchanged" or c.schedule for c in self.changes)

    def render(self) -> str:
        if self.errors:
            return "\n".join(str(e) for e in self.errors)
        lines = []
        for change in self.changes:
            if change.action == "add":
                lines.append(f"+ {change.name}: new workflow, version 1 ({change.file})")
            elif change.action == "change":
                lines.append(f"~ {change.name}: version {change.old_version} -> "
                             f"{change.new_version} ({change.file})")
                lines.extend("    " + line for line in change.diff.splitlines())
            else:
                lines.append(f"  {change.name}: unchanged (version {change.old_version})")
            if change.schedule:
                lines.append(f"    schedule: {change.schedule}")
        for name in self.not_in_folder:
            lines.append(f"? {name}: stored but not in these files (kept; its runs keep "
                         f"working)")
        if not self.has_changes:
            lines.append("No changes.")
        return "\n".join(lines)


def plan(path: str | Path) -> Plan:
    loaded, errors = load(path)
    result = Plan(errors=errors)
    if errors:
        return result
    result.errors = [error for item in loaded if (error := _schedule_clash(item))]
    if result.errors:
        return result
    names = set()
    for item in loaded:
        names.add(item.name)
        latest = latest_version(item.name)
        schedule_change = _schedule_change(item, latest.spec if latest else None)
        if latest is None:
            result.changes.append(Change(item.name, "add", item.file, new_version=1,
                                         schedule=schedule_change))
        elif latest.content_hash == item.content_hash:
            result.changes.append(Change(item.name, "unchanged", item.file,
                                         old_version=latest.version, schedule=schedule_change))
        else:
            result.changes.append(Change(
                item.name, "change", item.file, old_version=latest.version,
                new_version=latest.version + 1, diff=spec_diff(latest.spec, item.spec),
                schedule=schedule_change,
            ))
    if Path(path).is_dir():
        stored = set(WorkflowDefinition.objects.values_list("name", flat=True).distinct())
        result.not_in_folder = sorted(stored - names)
    return result


def apply(path: str | Path, *, created_by: str = "") -> Plan:
    """Store changed workflows as new versions and sync their schedules, in one transaction.
    Raises InvalidDefinitions (storing nothing) when any file is invalid."""
    with transaction.atomic():
        result = plan(path)
        if result.errors:
            raise InvalidDefinitions(result.errors)
        commit = git_commit(Path(path))
        by_name = {item.name: item for item in load(path)[0]}
        for change in result.changes:
            item = by_name[change.name]
            previous = latest_version(item.name)
            if change.action in ("add", "change"):
                # The unique (name, version) constraint makes a concurrent apply of the same
                # change fail instead of storing two versions.
                WorkflowDefinition.objects.create(
                    name=item.name, version=change.new_version,
                    description=item.spec.get("description", ""), spec=item.spec,
                    content_hash=item.content_hash, source_file=item.file,
                    source_text=item.source_text, git_commit=commit, created_by=created_by,
                )
            if change.schedule:
                _sync_schedule(item, previous.spec if previous else None)
    return result


def latest_version(name: str) -> WorkflowDefinition | None:
    return WorkflowDefinition.objects.filter(name=name).order_by("-version").first()


def spec_diff(old: dict[str, Any], new: dict[str, Any], old_label: str = "stored",
              new_label: str = "file") -> str:
    # Sorted keys: PostgreSQL's jsonb does not keep the file's key order, so an unsorted dump
    # of the stored spec would show every reordered key as removed and added again.
    before = yaml.safe_dump(old, sort_keys=True, allow_unicode=True).splitlines()
    after = yaml.safe_dump(new, sort_keys=True, allow_unicode=True).splitlines()
    return "\n".join(difflib.unified_diff(before, after, old_label, new_label, lineterm="", n=2))


def git_commit(path: Path) -> str:
    folder = path if path.is_dir() else path.parent
    try:
        out = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) == 40 else ""


# -- schedules declared in workflow files -----------------------------------------------------

def _schedule_fields(item: LoadedWorkflow) -> dict[str, Any] | None:
    spec = item.spec.get("schedule")
    if not spec:
        return None
    return {
        "kind": Schedule.Kind.CRON if "cron" in spec else Schedule.Kind.INTERVAL,
        "cron": spec.get("cron", ""),
        "interval": spec.get("interval"),
        "timezone": spec.get("timezone", "UTC"),
        "target_kind": Schedule.Target.WORKFLOW,
        "target": item.name,
        "input": spec.get("input", {}),
        "misfire_policy": spec.get("misfire", Schedule.Misfire.RUN_ONCE),
        "misfire_grace": spec.get("misfire_grace", 60),
        "overlap_policy": spec.get("overlap", Schedule.Overlap.ALLOW),
        "jitter": spec.get("jitter", 0),
        "source": item.file,
    }


def _schedule_clash(item: LoadedWorkflow) -> DefinitionError | None:
    """A schedule of the same name that this workflow's file does not own."""
    if not item.spec.get("schedule"):
        return None
    other = Schedule.objects.filter(name=item.name).first()
    if other is None or (other.target_kind == Schedule.Target.WORKFLOW
                         and other.target == item.name):
        return None
    return DefinitionError(item.file, "schedule", f"a schedule named {item.name!r} already "
                           f"exists for {other.target_kind} {other.target!r}; rename or delete "
                           f"it before this workflow can declare its own")


def _enabled_in(spec: dict[str, Any] | None) -> bool | None:
    schedule = (spec or {}).get("schedule")
    return None if not schedule else schedule.get("enabled", True)


def _enabled_change(item: LoadedWorkflow, previous: dict[str, Any] | None,
                    current: Schedule) -> bool | None:
    """The file's `enabled` when the file changed it since the previous version; None keeps
    what operators set (a pause in the admin survives an unrelated apply)."""
    wanted, before = _enabled_in(item.spec), _enabled_in(previous)
    if wanted is not None and wanted != before and wanted != current.enabled:
        return wanted
    return None


def _schedule_change(item: LoadedWorkflow, previous: dict[str, Any] | None) -> str:
    wanted = _schedule_fields(item)
    current = Schedule.objects.filter(name=item.name, target_kind="workflow").first()
    if wanted is None:
        if current is not None and current.source and current.enabled:
            return "removed from the file: the schedule will be disabled"
        return ""
    if current is None:
        timing = wanted["cron"] or f"every {wanted['interval']}s"
        return f"new: {timing} ({wanted['timezone']})"
    differences = [key for key, value in wanted.items() if getattr(current, key) != value]
    enabled = _enabled_change(item, previous, current)
    if enabled is not None:
        differences.append("enable" if enabled else "disable")
    if differences:
        return "update " + ", ".join(differences)
    return ""


def _sync_schedule(item: LoadedWorkflow, previous: dict[str, Any] | None) -> None:
    from scheduler import firing

    wanted = _schedule_fields(item)
    current = Schedule.objects.filter(name=item.name, target_kind="workflow").first()
    if wanted is None:
        if current is not None and current.source:
            current.enabled = False
            current.save(update_fields=["enabled", "updated_at"])
        return
    enabled = (item.spec.get("schedule") or {}).get("enabled", True)
    timing = ("kind", "cron", "interval", "timezone")
    if current is None:
        current = Schedule(name=item.name, enabled=enabled, **wanted)
        retime = True
    else:
        retime = any(getattr(current, key) != wanted[key] for key in timing)
        enabled = _enabled_change(item, previous, current)
        if enabled is not None:
            current.enabled = enabled
            retime = retime or enabled  # re-enabled: due times from now on, not the backlog
        for key, value in wanted.items():
            setattr(current, key, value)
    if retime or current.next_fire_at is None:
        # A changed timing starts from now; otherwise a due time not yet fired is kept.
        current.next_fire_at = firing.next_due(current, firing.now())
    current.save()
