"""The workflow engine: start, advance, cancel and rerun runs.

Every change to a run happens in one transaction holding the run's row lock (SQLite serialises
writers anyway), so two steps finishing at once in two workers cannot both start the step that
needs them. Step jobs are enqueued through `queues.enqueue` inside that transaction: a step is
`running` exactly when its job exists.

Runs advance when a step's job ends: `queues` sends `job_finished` in whichever process ended
it, and `scheduler.receivers` calls `job_finished()` here at once. Each scheduler tick also
calls `sweep()`, which catches any outcome a crashed process did not pass on.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import transaction
from django.utils import timezone
from jsonschema import Draft202012Validator

from scheduler.definitions import Workflow, expressions
from scheduler.definitions.errors import ExpressionError
from scheduler.models import (
    RUN_ACTIVE_STATES,
    STEP_DONE_STATES,
    Firing,
    RunState,
    Schedule,
    StepRun,
    StepState,
    WorkflowDefinition,
    WorkflowRun,
)

logger = logging.getLogger("scheduler.engine")


class WorkflowError(Exception):
    """Base of the engine's errors: nothing was changed."""


class UnknownWorkflow(WorkflowError, LookupError):
    pass


class InvalidInput(WorkflowError, ValueError):
    pass


class InvalidRunTransition(WorkflowError):
    """The run is not in a state that allows the action (e.g. cancel a finished run)."""


# -- starting ---------------------------------------------------------------------------------

def start_run(workflow: str | WorkflowDefinition, input: dict[str, Any] | None = None, *,
              triggered_by: str = "python", schedule: Schedule | None = None,
              state: str = RunState.RUNNING) -> WorkflowRun:
    """Start a run of the newest version of a workflow (or of the given version) and enqueue
    its first steps. Raises UnknownWorkflow or InvalidInput, writing nothing."""
    definition = _definition(workflow)
    flow = Workflow(definition.spec)
    data = _check_input(flow, input)
    with transaction.atomic():
        run = WorkflowRun.objects.create(
            definition=definition, input=data, state=state, triggered_by=triggered_by[:200],
            schedule=schedule,
            started_at=timezone.now() if state == RunState.RUNNING else None,
        )
        StepRun.objects.bulk_create(
            StepRun(run=run, step_id=step.id, group=step.group, task=step.task)
            for step in flow.steps.values()
        )
        if state == RunState.RUNNING:
            _advance(run, flow)
    logger.info("started run %s of %s v%s (%s)", run.pk, definition.name, definition.version,
                triggered_by, extra={"run_id": run.pk, "workflow": definition.name})
    return run


def _definition(workflow: str | WorkflowDefinition) -> WorkflowDefinition:
    if isinstance(workflow, WorkflowDefinition):
        return workflow
    definition = (WorkflowDefinition.objects.filter(name=workflow).order_by("-version").first()
                  if isinstance(workflow, str) else None)
    if definition is None:
        raise UnknownWorkflow(f"No workflow named {workflow!r} has been applied "
                              f"(run `manage.py relay_workflows apply`)")
    return definition


def _check_input(flow: Workflow, input: dict[str, Any] | None) -> dict[str, Any]:
    if input is not None and not isinstance(input, dict):
        raise InvalidInput(f"workflow input must be an object, not {type(input).__name__}")
    data = {**flow.input_defaults(), **(input or {})}
    schema = flow.input_schema()
    if schema is not None:
        errors = sorted(Draft202012Validator(schema).iter_errors(data), key=lambda e: e.path)
        if errors:
            error = errors[0]
            where = ".".join(str(p) for p in error.absolute_path) or "input"
            raise InvalidInput(f"{where}: {error.message}")
    try:
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"workflow input must be JSON: {exc}") from None
    return data


# -- advancing --------------------------------------------------------------------------------

def advance(run_id: int) -> WorkflowRun:
    """Re-evaluate a run: start every step that has become ready. Idempotent."""
    with transaction.atomic():
        run = _locked(run_id)
        if run.state == RunState.RUNNING:
            _advance(run, Workflow(run.definition.spec))
    return run


def job_finished(job_id: int, state: str, run_id: int) -> None:
    """Record the end of a step's job and move its run on."""
    from queues.models import Job

    with transaction.atomic():
        run = _locked(run_id)
        steps = _steps(run)
        step = next((s for s in steps.values()
                     if s.job_id == job_id and s.state == StepState.RUNNING), None)
        if step is None:
            return  # already recorded (the sweep and the signal both saw it), or cancelled
        job = Job.objects.filter(pk=job_id).values(
            "state", "result", "last_error_type", "last_error_message").first()
        flow = Workflow(run.definition.spec)
        # The row, not the caller's `state`, decides: a signal may arrive after a retry.
        state = job["state"] if job else "cancelled"
        if state == "success":
            _finish_step(step, StepState.SUCCESS, output=job["result"])
        elif state == "dead_letter":
            error = f"{job['last_error_type']}: {job['last_error_message']}".strip(": ")
            _step_failed(run, flow, steps, step, f"job #{job_id} failed after its retries: "
                                                 f"{error or 'no error message'}")
        elif state == "cancelled":
            _step_failed(run, flow, steps, step, f"job #{job_id} was cancelled")
        else:
            return  # not finished after all (a stale signal); nothing to do
        if run.state == RunState.RUNNING:
            _advance(run, flow, steps)


def _advance(run: WorkflowRun, flow: Workflow, steps: dict[str, StepRun] | None = None) -> None:
    steps = steps if steps is not None else _steps(run)
    progress = True
    while progress and run.state == RunState.RUNNING:
        progress = False
        for sid, step in steps.items():
            if step.state != StepState.PENDING or run.state != RunState.RUNNING:
                continue
            needs = [steps[n] for n in flow.needs_of[sid]]
            if any(n.state not in STEP_DONE_STATES for n in needs):
                continue
            progress = True
            _start_step(run, flow, steps, step, needs)
    if run.state == RunState.RUNNING and all(s.state in STEP_DONE_STATES for s in steps.values()):
        _finish_run(run, RunState.SUCCESS)


def _start_step(run: WorkflowRun, flow: Workflow, steps: dict[str, StepRun], step: StepRun,
                needs: list[StepRun]) -> None:
    from queues import EnqueueError, enqueue

    spec = flow.steps[step.step_id]
    if needs and all(n.state == StepState.SKIPPED for n in needs):
        _finish_step(step, StepState.SKIPPED, error="everything it needs was skipped")
        return
    cancelled = [n.step_id for n in needs if n.state == StepState.CANCELLED]
    if cancelled:
        _step_failed(run, flow, steps, step, f"needs {', '.join(cancelled)}, which was "
                                             f"cancelled")
        return
    context = _context(run, steps)
    try:
        if spec.when is not None and not expressions.condition(spec.when, context):
            _finish_step(step, StepState.SKIPPED, error=f"condition is false: {spec.when}")
            return
        kwargs = expressions.resolve(spec.input, context)
    except ExpressionError as exc:
        _step_failed(run, flow, steps, step, str(exc))
        return
    step.attempt += 1
    try:
        job = enqueue(
            spec.task, **kwargs, **flow.job_options(spec),
            dedup_key=f"relay-workflow:{run.pk}:{step.step_id}:{step.attempt}",
            meta={"workflow_run": run.pk, "workflow": flow.name, "step": step.step_id},
            tags=[f"workflow:{flow.name}"],
        )
    except (EnqueueError, TypeError) as exc:
        _step_failed(run, flow, steps, step, f"could not enqueue {spec.task}: {exc}")
        return
    step.state = StepState.RUNNING
    step.job = job
    step.input = kwargs
    step.error = ""
    step.output = None
    step.started_at = timezone.now()
    step.finished_at = None
    step.save()


def _context(run: WorkflowRun, steps: dict[str, StepRun]) -> dict[str, Any]:
    return {
        "input": run.input,
        "run": {"id": run.pk, "triggered_by": run.triggered_by},
        "steps": {sid: {"state": s.state, "output": s.output, "error": s.error}
                  for sid, s in steps.items()},
    }


def _finish_step(step: StepRun, state: str, *, output: Any = None, error: str = "") -> None:
    step.state = state
    step.output = output
    step.error = error[:4000]
    step.finished_at = timezone.now()
    step.save(update_fields=["state", "output", "error", "finished_at"])


def _step_failed(run: WorkflowRun, flow: Workflow, steps: dict[str, StepRun], step: StepRun,
                 error: str) -> None:
    _finish_step(step, StepState.FAILED, error=error)
    if flow.steps[step.step_id].on_failure == "continue" or run.state != RunState.RUNNING:
        return
    # Steps not started yet will not start; running ones finish and are recorded, so a rerun
    # can keep what they produced.
    for other in steps.values():
        if other.state == StepState.PENDING:
            _finish_step(other, StepState.CANCELLED, error="not started: the run failed")
    _finish_run(run, RunState.FAILED, error=f"step {step.step_id} failed: {error}")


def _finish_run(run: WorkflowRun, state: str, error: str = "") -> None:
    run.state = state
    run.error = error[:4000]
    run.finished_at = timezone.now()
    run.save(update_fields=["state", "error", "finished_at"])
    logger.log(logging.WARNING if state == RunState.FAILED else logging.INFO,
               "run %s %s%s", run.pk, state, f": {error}" if error else "",
               extra={"run_id": run.pk, "state": state})
    if run.schedule_id:
        transaction.on_commit(lambda: start_queued(run.schedule_id))


def start_queued(schedule_id: int) -> WorkflowRun | None:
    """Start the oldest queued run of a schedule once none of its runs is running."""
    with transaction.atomic():
        Schedule.objects.select_for_update().filter(pk=schedule_id).first()
        if WorkflowRun.objects.filter(schedule_id=schedule_id, state=RunState.RUNNING).exists():
            return None
        run = (WorkflowRun.objects.select_for_update()
               .filter(schedule_id=schedule_id, state=RunState.SCHEDULED).order_by("id").first())
        if run is None:
            return None
        run.state = RunState.RUNNING
        run.started_at = timezone.now()
        run.save(update_fields=["state", "started_at"])
        Firing.objects.filter(run=run, outcome=Firing.Outcome.QUEUED).update(
            outcome=Firing.Outcome.FIRED, fired_at=run.started_at,
            note="started when the previous run ended (overlap policy queue)")
        _advance(run, Workflow(run.definition.spec))
    return run


# -- operator actions -------------------------------------------------------------------------

def cancel_run(run: WorkflowRun | int, *, by: str = "") -> WorkflowRun:
    """Cancel a run: steps not started are cancelled, running steps' jobs are cancelled (a
    running handler is stopped by its worker). Every step ends in a terminal state."""
    from queues import InvalidTransition, cancel

    with transaction.atomic():
        run = _locked(_pk(run))
        if run.state not in RUN_ACTIVE_STATES:
            raise InvalidRunTransition(f"Run #{run.pk} is {run.state}; only scheduled or "
                                       f"running runs can be cancelled")
        for step in _steps(run).values():
            if step.state == StepState.PENDING:
                _finish_step(step, StepState.CANCELLED, error=f"run cancelled by {by or '?'}")
            elif step.state == StepState.RUNNING:
                if step.job_id is not None:
                    try:
                        cancel(step.job_id)
                    except InvalidTransition:
                        pass  # it ended just now; the step is cancelled all the same
                _finish_step(step, StepState.CANCELLED, error=f"run cancelled by {by or '?'}")
        _finish_run(run, RunState.CANCELLED, error=f"cancelled by {by}" if by else "cancelled")
    return run


def rerun(run: WorkflowRun | int, *, by: str = "") -> WorkflowRun:
    """Rerun a failed or cancelled run on its own version: its failed and cancelled steps and
    everything downstream of them run again; successful steps keep their outputs."""
    with transaction.atomic():
        run = _locked(_pk(run))
        if run.state not in (RunState.FAILED, RunState.CANCELLED):
            raise InvalidRunTransition(f"Run #{run.pk} is {run.state}; only failed or "
                                       f"cancelled runs can be rerun")
        steps = _steps(run)
        busy = [sid for sid, s in steps.items() if s.state == StepState.RUNNING]
        if busy:
            raise InvalidRunTransition(f"Run #{run.pk} still has running steps "
                                       f"({', '.join(busy)}); wait for them to end")
        flow = Workflow(run.definition.spec)
        broken = {sid for sid, s in steps.items()
                  if s.state in (StepState.FAILED, StepState.CANCELLED)}
        for sid in broken | flow.descendants(broken):
            step = steps[sid]
            step.state = StepState.PENDING
            step.output = None
            step.error = ""
            step.finished_at = None
            step.save(update_fields=["state", "output", "error", "finished_at"])
        run.state = RunState.RUNNING
        run.error = ""
        run.finished_at = None
        run.reruns += 1
        run.save(update_fields=["state", "error", "finished_at", "reruns"])
        logger.info("run %s rerun by %s: %s", run.pk, by or "?", ", ".join(sorted(broken)),
                    extra={"run_id": run.pk})
        _advance(run, flow, steps)
    return run


# -- the safety net ---------------------------------------------------------------------------

def sweep(limit: int = 200) -> int:
    """Apply job outcomes that were not passed on (a process died between committing a job's
    end and telling the engine) and advance runs with nothing in flight. Returns runs touched."""
    from queues.models import TERMINAL_STATES

    touched = 0
    missed = (StepRun.objects.filter(state=StepState.RUNNING, job__state__in=TERMINAL_STATES)
              .values_list("job_id", "job__state", "run_id")[:limit])
    for job_id, state, run_id in missed:
        job_finished(job_id, state, run_id)
        touched += 1
    orphans = StepRun.objects.filter(state=StepState.RUNNING, job__isnull=True).values_list(
        "run_id", "id")[:limit]
    for run_id, step_pk in orphans:
        with transaction.atomic():
            run = _locked(run_id)
            steps = _steps(run)
            step = next((s for s in steps.values() if s.pk == step_pk), None)
            if step is not None and step.state == StepState.RUNNING and step.job_id is None:
                _step_failed(run, Workflow(run.definition.spec), steps, step,
                             "its job was deleted before it finished")
                if run.state == RunState.RUNNING:
                    _advance(run, Workflow(run.definition.spec), steps)
            touched += 1
    idle = (WorkflowRun.objects.filter(state=RunState.RUNNING)
            .exclude(steps__state=StepState.RUNNING).values_list("id", flat=True)[:limit])
    for run_id in idle:
        advance(run_id)
        touched += 1
    waiting = (WorkflowRun.objects.filter(state=RunState.SCHEDULED, schedule__isnull=False)
               .values_list("schedule_id", flat=True).distinct()[:limit])
    for schedule_id in waiting:
        if start_queued(schedule_id) is not None:
            touched += 1
    return touched


def _locked(run_id: int) -> WorkflowRun:
    try:
        return WorkflowRun.objects.select_for_update(of=("self",)).select_related("definition").get(
            pk=run_id)
    except WorkflowRun.DoesNotExist:
        raise InvalidRunTransition(f"Run #{run_id} does not exist") from None


def _steps(run: WorkflowRun) -> dict[str, StepRun]:
    return {s.step_id: s for s in StepRun.objects.filter(run=run).order_by("id")}


def _pk(run: WorkflowRun | int) -> int:
    return run.pk if isinstance(run, WorkflowRun) else int(run)
