"""`Workflow`: one definition as a graph of steps, and the checks a schema cannot express."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from cronsim import CronSim, CronSimError
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.exceptions import ValidationError as SchemaValidationError

from queues.registry import registry
from scheduler.definitions import expressions
from scheduler.definitions.errors import DefinitionError, ExpressionError, format_path


@dataclass(frozen=True)
class Step:
    id: str
    task: str
    path: tuple[str | int, ...]  # where it is in the file, for error messages
    group: str = ""
    needs: tuple[str, ...] = ()  # step ids or group names, its group's needs included
    own_needs: tuple[str, ...] = ()  # as written on the step
    input: dict[str, Any] = field(default_factory=dict)
    when: str | None = None
    queue: str | None = None
    priority: int | None = None
    retry: dict[str, Any] | None = None
    timeout: float | None = None
    has_timeout: bool = False
    on_failure: str = "fail_run"


class Workflow:
    """A parsed definition. `check()` lists every graph problem; the engine uses `needs_of`,
    `order` and the per-step options."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.defaults: dict[str, Any] = spec.get("defaults") or {}
        self.groups: dict[str, list[str]] = {}
        self.group_paths: dict[str, tuple[str | int, ...]] = {}
        self.steps: dict[str, Step] = {}
        self.duplicates: list[tuple[str, tuple[str | int, ...]]] = []
        for index, item in enumerate(spec["steps"]):
            if "group" in item:
                name = item["group"]
                self._claim(name, ("steps", index, "group"))
                self.groups.setdefault(name, [])
                self.group_paths[name] = ("steps", index)
                for inner, member in enumerate(item["steps"]):
                    step = self._step(member, ("steps", index, "steps", inner), group=name,
                                      extra_needs=tuple(item.get("needs", ())))
                    self.groups[name].append(step.id)
            else:
                self._step(item, ("steps", index))

    def _claim(self, name: str, path: tuple[str | int, ...]) -> bool:
        if name in self.steps or name in self.groups:
            self.duplicates.append((name, path))
            return False
        return True

    def _step(self, item: dict[str, Any], path: tuple[str | int, ...], group: str = "",
              extra_needs: tuple[str, ...] = ()) -> Step:
        step = Step(
            id=item["id"], task=item["task"], path=path, group=group,
            needs=tuple(dict.fromkeys([*extra_needs, *item.get("needs", ())])),
            own_needs=tuple(item.get("needs", ())),
            input=item.get("input") or {}, when=item.get("when"), queue=item.get("queue"),
            priority=item.get("priority"), retry=item.get("retry"),
            timeout=item.get("timeout"), has_timeout="timeout" in item,
            on_failure=item.get("on_failure", "fail_run"),
        )
        if self._claim(step.id, (*path, "id")):
            self.steps[step.id] = step
        return step

    # -- the graph ---------------------------------------------------------------------------

    def expand(self, name: str) -> list[str]:
        """A need as step ids: a step is itself, a group is its members."""
        return list(self.groups[name]) if name in self.groups else [name]

    @cached_property
    def needs_of(self) -> dict[str, tuple[str, ...]]:
        return {
            step.id: tuple(dict.fromkeys(
                sid for need in step.needs if need in self.steps or need in self.groups
                for sid in self.expand(need)
            ))
            for step in self.steps.values()
        }

    @cached_property
    def dependants_of(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {sid: [] for sid in self.steps}
        for sid, needs in self.needs_of.items():
            for need in needs:
                result[need].append(sid)
        return result

    def ancestors(self, step_id: str) -> set[str]:
        seen: set[str] = set()
        stack = list(self.needs_of.get(step_id, ()))
        while stack:
            sid = stack.pop()
            if sid not in seen:
                seen.add(sid)
                stack.extend(self.needs_of.get(sid, ()))
        return seen

    def descendants(self, step_ids: set[str]) -> set[str]:
        seen: set[str] = set()
        stack = list(step_ids)
        while stack:
            for child in self.dependants_of.get(stack.pop(), ()):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        return seen

    def find_cycle(self) -> list[str] | None:
        """A dependency cycle as a list of step ids (first == last), or None."""
        state: dict[str, int] = {}
        trail: list[str] = []

        def visit(sid: str) -> list[str] | None:
            state[sid] = 1
            trail.append(sid)
            for need in self.needs_of[sid]:
                if state.get(need) == 1:
                    return [*trail[trail.index(need):], need]
                if need not in state:
                    found = visit(need)
                    if found:
                        return found
            trail.pop()
            state[sid] = 2
            return None

        for sid in self.steps:
            if sid not in state:
                found = visit(sid)
                if found:
                    return found
        return None

    # -- options the engine applies ----------------------------------------------------------

    def job_options(self, step: Step) -> dict[str, Any]:
        options: dict[str, Any] = {}
        queue = step.queue or self.defaults.get("queue")
        if queue:
            options["queue"] = queue
        priority = step.priority if step.priority is not None else self.defaults.get("priority")
        if priority is not None:
            options["priority"] = priority
        retry = step.retry if step.retry is not None else self.defaults.get("retry")
        if retry:
            if "max_attempts" in retry:
                options["max_attempts"] = retry["max_attempts"]
            if "backoff" in retry:
                options["backoff"] = retry["backoff"]
        if step.has_timeout:
            options["timeout"] = step.timeout
        elif "timeout" in self.defaults:
            options["timeout"] = self.defaults["timeout"]
        return options

    def input_defaults(self) -> dict[str, Any]:
        return dict((self.spec.get("input") or {}).get("defaults") or {})

    def input_schema(self) -> dict[str, Any] | None:
        return (self.spec.get("input") or {}).get("schema")

    # -- validation --------------------------------------------------------------------------

    def check(self, file: str) -> list[DefinitionError]:
        errors: list[DefinitionError] = []

        def error(path: tuple[str | int, ...] | list[str | int], message: str) -> None:
            errors.append(DefinitionError(file, format_path(list(path)), message))

        for name, path in self.duplicates:
            error(path, f"duplicate id {name!r} (step and group ids must be unique)")
        for step in self.steps.values():
            if step.task not in registry:
                error((*step.path, "task"), f"unknown task {step.task!r}: workflows may only "
                      f"name tasks registered with @task")
            for index, need in enumerate(step.own_needs):
                if need not in self.steps and need not in self.groups:
                    error((*step.path, "needs", index), f"unknown step or group {need!r}")
                elif need == step.id or need == step.group:
                    error((*step.path, "needs", index), f"step {step.id!r} cannot need itself")
        for name, path in self.group_paths.items():
            item = self.spec["steps"][path[1]]
            for index, need in enumerate(item.get("needs", ())):
                if need not in self.steps and need not in self.groups:
                    error((*path, "needs", index), f"unknown step or group {need!r}")
                elif need == name or need in self.groups[name]:
                    error((*path, "needs", index),
                          f"group {name!r} cannot need itself or one of its own steps")
        if errors:
            return errors
        cycle = self.find_cycle()
        if cycle:
            first = self.steps[cycle[0]]
            error((*first.path, "needs"), f"dependency cycle: {' -> '.join(cycle)}")
            return errors
        for step in self.steps.values():
            upstream = self.ancestors(step.id)
            if step.when is not None:
                self._check_expression(step.when, upstream, (*step.path, "when"), error)
            for inner, text in expressions.references(step.input):
                self._check_expression(text, upstream, (*step.path, "input", *inner), error)
        errors.extend(self._check_input(file))
        errors.extend(self._check_schedule(file))
        return errors

    def _check_expression(self, text: str, upstream: set[str], path: tuple, error) -> None:
        try:
            refs = expressions.step_references(text)
        except ExpressionError as exc:
            error(path, str(exc))
            return
        for ref in sorted(refs - upstream):
            reason = ("is not a step" if ref not in self.steps
                      else "does not run before it (add it to needs)")
            error(path, f"{text.strip()!r} reads steps.{ref}, which {reason}")

    def _check_input(self, file: str) -> list[DefinitionError]:
        schema = self.input_schema()
        if schema is None:
            return []
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            return [DefinitionError(file, format_path(["input", "schema", *exc.path]),
                                    f"invalid JSON Schema: {exc.message}")]
        # Defaults may cover only some fields: a run's input supplies the required ones.
        partial = {key: value for key, value in schema.items() if key != "required"}
        try:
            Draft202012Validator(partial).validate(self.input_defaults())
        except SchemaValidationError as exc:
            return [DefinitionError(file, format_path(["input", "defaults", *exc.path]),
                                    f"defaults do not match the input schema: {exc.message}")]
        return []

    def _check_schedule(self, file: str) -> list[DefinitionError]:
        schedule = self.spec.get("schedule")
        if not schedule:
            return []
        errors = []
        zone = schedule.get("timezone", "UTC")
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            errors.append(DefinitionError(file, "schedule.timezone",
                                          f"unknown time zone {zone!r} (use an IANA name such "
                                          f"as Europe/Berlin)"))
        if "cron" in schedule:
            problem = cron_problem(schedule["cron"])
            if problem:
                errors.append(DefinitionError(file, "schedule.cron", problem))
        return errors


def cron_problem(expression: str) -> str | None:
    """None when `expression` is a valid five-field cron expression, else why not."""
    from datetime import UTC, datetime

    try:
        CronSim(expression, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        return f"invalid cron expression {expression!r}: {exc}"
    return None
