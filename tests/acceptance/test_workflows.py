"""Workflow runs end to end: real worker processes run the steps, the engine advances runs
from job outcomes, on SQLite and on PostgreSQL."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from queues.models import Execution, Job, JobState
from scheduler import engine
from scheduler.definitions import sync
from scheduler.models import RunState, StepRun, StepState, WorkflowDefinition, WorkflowRun
from tests.conftest import wait_for
from tests.testapp.models import Ledger, Switch

pytestmark = pytest.mark.slow


def apply(folder: Path, name: str, text: str) -> WorkflowDefinition:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(textwrap.dedent(text))
    sync.apply(folder, created_by="test")
    return WorkflowDefinition.objects.filter(name=name).order_by("-version").first()


def finished(run: WorkflowRun, timeout: float = 30) -> WorkflowRun:
    def done():
        run.refresh_from_db()
        return run.is_finished

    wait_for(done, timeout=timeout, message=f"run {run.pk} to finish")
    return run


def steps(run: WorkflowRun) -> dict[str, StepRun]:
    return {s.step_id: s for s in StepRun.objects.filter(run=run)}


def events(name: str) -> list[Ledger]:
    return list(Ledger.objects.filter(key=name).order_by("id"))


def span(name: str) -> tuple:
    rows = {row.event: row.at for row in events(name)}
    return rows["start"], rows["end"]


DIAMOND = """
    name: diamond
    input:
      defaults: {size: 3}
    steps:
      - id: a
        task: tests.step
        input: {name: a, size: "${{ input.size }}"}
      - group: middle
        needs: [a]
        steps:
          - id: b
            task: tests.step
            input: {name: b, sleep: 1.0, from_a: "${{ steps.a.output.name }}"}
          - id: c
            task: tests.step
            input: {name: c, sleep: 1.0, size: "${{ steps.a.output.inputs.size }}"}
      - id: d
        task: tests.step
        needs: [middle]
        input:
          name: d
          b: "${{ steps.b.output }}"
          c: "${{ steps.c.output.inputs.size * 2 }}"
          label: "b said ${{ steps.b.output.inputs.from_a }}, c said ${{ steps.c.output.name }}"
"""


def test_diamond_runs_in_dependency_order_with_b_and_c_in_parallel(start_worker, tmp_path):
    apply(tmp_path, "diamond", DIAMOND)
    run = engine.start_run("diamond", {"size": 21})
    assert [s.step_id for s in StepRun.objects.filter(run=run, state="running")] == ["a"]
    start_worker(concurrency=2)
    run = finished(run)
    assert run.state == RunState.SUCCESS, run.error

    a, b, c, d = span("a"), span("b"), span("c"), span("d")
    assert a[1] <= b[0] and a[1] <= c[0]  # b and c start after a ended
    assert b[0] < c[1] and c[0] < b[1]  # b and c overlap: they ran in parallel
    assert d[0] >= max(b[1], c[1])  # d starts after both
    result = steps(run)
    assert result["d"].input == {
        "name": "d",
        "b": {"name": "b", "inputs": {"from_a": "a"}},
        "c": 42,  # a whole reference keeps its type: 21 * 2
        "label": "b said a, c said c",
    }
    assert result["d"].output == {"name": "d", "inputs": {k: v for k, v in
                                                          result["d"].input.items()
                                                          if k != "name"}}
    assert all(s.state == StepState.SUCCESS and s.job.state == JobState.SUCCESS
               for s in result.values())


def test_a_false_condition_skips_its_step_and_what_needs_only_it(start_worker, tmp_path):
    apply(tmp_path, "conditional", """
        name: conditional
        steps:
          - id: build
            task: tests.step
            input: {name: build}
          - id: deploy
            task: tests.step
            needs: [build]
            when: "input.env == 'production' and steps.build.state == 'success'"
            input: {name: deploy}
          - id: smoke_test
            task: tests.step
            needs: [deploy]
            input: {name: smoke_test}
          - id: notify
            task: tests.step
            needs: [build, deploy]
            input: {name: notify, deployed: "${{ steps.deploy.state }}"}
    """)
    run = engine.start_run("conditional", {"env": "staging"})
    start_worker()
    run = finished(run)
    result = steps(run)
    assert run.state == RunState.SUCCESS
    assert {k: s.state for k, s in result.items()} == {
        "build": "success", "deploy": "skipped", "smoke_test": "skipped", "notify": "success",
    }
    assert "condition is false" in result["deploy"].error
    assert result["deploy"].job is None and result["smoke_test"].job is None
    assert result["notify"].input == {"name": "notify", "deployed": "skipped"}
    assert not events("deploy") and not events("smoke_test")

    production = engine.start_run("conditional", {"env": "production"})
    production = finished(production)
    assert {k: s.state for k, s in steps(production).items()} == {
        "build": "success", "deploy": "success", "smoke_test": "success", "notify": "success",
    }


FAILING = """
    name: failing
    defaults:
      retry: {max_attempts: 2, backoff: {base: 0.05, jitter: 0}}
    steps:
      - id: extract
        task: tests.step
        input: {name: extract}
      - id: transform
        task: tests.step
        needs: [extract]
        on_failure: {on_failure}
        input: {name: transform, fail_until: fixed}
      - id: load
        task: tests.step
        needs: [transform]
        input: {name: load}
      - id: audit
        task: tests.step
        needs: [extract]
        input: {name: audit}
"""


def test_a_failing_step_fails_the_run_after_its_retries_and_rerun_redoes_only_it(
        start_worker, tmp_path):
    apply(tmp_path, "failing", FAILING.replace("{on_failure}", "fail_run"))
    run = engine.start_run("failing")
    start_worker(concurrency=2)
    run = finished(run)
    result = steps(run)
    assert run.state == RunState.FAILED
    assert "step transform failed" in run.error and "not fixed yet" in run.error
    assert result["transform"].state == StepState.FAILED
    assert Execution.objects.filter(job=result["transform"].job).count() == 2  # max_attempts
    assert result["transform"].job.state == JobState.DEAD_LETTER
    assert result["load"].state == StepState.CANCELLED  # never started
    assert result["extract"].state == StepState.SUCCESS
    # audit ran beside transform; whether it ended before or after the failure, it is
    # recorded and kept
    wait_for(lambda: StepRun.objects.get(pk=result["audit"].pk).state in ("success",),
             message="audit to be recorded")
    old_transform_job = result["transform"].job_id

    Switch.objects.create(name="fixed")
    engine.rerun(run, by="test")
    run = finished(run)
    assert run.state == RunState.SUCCESS and run.reruns == 1
    result = steps(run)
    assert all(s.state == StepState.SUCCESS for s in result.values())
    assert result["transform"].job_id != old_transform_job and result["transform"].attempt == 2
    # Only the failed step and its dependants ran again.
    assert [len([e for e in events(n) if e.event == "end"])
            for n in ("extract", "audit", "transform", "load")] == [1, 1, 1, 1]
    assert len([e for e in events("transform") if e.event == "start"]) == 3  # 2 failed + 1


def test_on_failure_continue_lets_the_run_go_on(start_worker, tmp_path):
    apply(tmp_path, "failing", FAILING.replace("{on_failure}", "continue"))
    run = engine.start_run("failing")
    start_worker(concurrency=2)
    run = finished(run)
    result = steps(run)
    assert run.state == RunState.SUCCESS
    assert result["transform"].state == StepState.FAILED
    assert "failed after its retries" in result["transform"].error
    assert result["load"].state == StepState.SUCCESS  # its need ended (failed, tolerated)
    assert result["audit"].state == StepState.SUCCESS
    with pytest.raises(engine.InvalidRunTransition):
        engine.rerun(run)  # only failed or cancelled runs


def test_runs_in_flight_keep_their_version_new_runs_use_the_newest(start_worker, tmp_path):
    v1 = apply(tmp_path, "pipeline", """
        name: pipeline
        steps:
          - id: slow
            task: tests.step
            input: {name: slow, sleep: 1.5}
          - id: old_finish
            task: tests.step
            needs: [slow]
            input: {name: old_finish}
    """)
    running = engine.start_run("pipeline")
    worker = start_worker()
    wait_for(lambda: events("slow"), message="the first step to start")
    v2 = apply(tmp_path, "pipeline", """
        name: pipeline
        steps:
          - id: slow
            task: tests.step
            input: {name: slow, sleep: 0.1}
          - id: new_finish
            task: tests.step
            needs: [slow]
            input: {name: new_finish}
    """)
    assert (v1.version, v2.version) == (1, 2)
    newer = engine.start_run("pipeline")
    running, newer = finished(running), finished(newer)
    assert running.definition_id == v1.pk and newer.definition_id == v2.pk
    assert set(steps(running)) == {"slow", "old_finish"}
    assert set(steps(newer)) == {"slow", "new_finish"}
    assert running.state == newer.state == RunState.SUCCESS
    assert len(events("old_finish")) == 2 and len(events("new_finish")) == 2
    sync.apply(tmp_path, created_by="test")  # unchanged: no version 3
    assert WorkflowDefinition.objects.filter(name="pipeline").count() == 2
    assert worker.proc.poll() is None


def test_cancelling_a_run_stops_its_running_job_and_ends_every_step(start_worker, tmp_path):
    apply(tmp_path, "long", """
        name: long
        steps:
          - id: first
            task: tests.step
            input: {name: first}
          - group: work
            needs: [first]
            steps:
              - id: forever
                task: tests.sleep
                input: {seconds: 3600}
              - id: queued
                task: tests.step
                queue: elsewhere
                input: {name: queued}
          - id: after
            task: tests.step
            needs: [work]
            input: {name: after}
    """)
    run = engine.start_run("long")
    start_worker(concurrency=2)
    forever = wait_for(lambda: StepRun.objects.filter(run=run, step_id="forever",
                                                      state="running").first(),
                       message="the long step to be enqueued")
    wait_for(lambda: Ledger.objects.filter(job_id=forever.job_id, event="start").exists(),
             message="the long step to start")
    engine.cancel_run(run, by="test")
    run.refresh_from_db()
    assert run.state == RunState.CANCELLED
    assert all(s.state in ("success", "cancelled") for s in steps(run).values())
    assert {k: s.state for k, s in steps(run).items()} == {
        "first": "success", "forever": "cancelled", "queued": "cancelled", "after": "cancelled",
    }
    # The worker stops the running handler; the waiting job is cancelled at once.
    wait_for(lambda: Job.objects.get(pk=forever.job_id).state == JobState.CANCELLED,
             timeout=10, message="the running job to be stopped")
    queued = StepRun.objects.get(run=run, step_id="queued")
    assert Job.objects.get(pk=queued.job_id).state == JobState.CANCELLED
    assert not Ledger.objects.filter(job_id=forever.job_id, event="end").exists()
    run.refresh_from_db()
    assert run.state == RunState.CANCELLED  # the job's end did not reopen it
    with pytest.raises(engine.InvalidRunTransition):
        engine.cancel_run(run)


def test_bad_input_is_refused_and_nothing_is_written(transactional_db, tmp_path):
    apply(tmp_path, "typed", """
        name: typed
        input:
          schema:
            type: object
            required: [customer_id]
            properties:
              customer_id: {type: integer, minimum: 1}
        steps:
          - id: only
            task: tests.step
            input: {name: only, customer: "${{ input.customer_id }}"}
    """)
    with pytest.raises(engine.InvalidInput, match="customer_id"):
        engine.start_run("typed", {"customer_id": "42"})
    with pytest.raises(engine.InvalidInput, match="required"):
        engine.start_run("typed", {})
    with pytest.raises(engine.UnknownWorkflow):
        engine.start_run("nope")
    assert not WorkflowRun.objects.exists() and not Job.objects.exists()
