"""Data for the browser tests and the README screenshots, made through the engine's own
functions (enqueue, the store's claim/ack/fail, start_run), never by writing rows."""

from __future__ import annotations

import random
import textwrap
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.utils import timezone

from queues import enqueue, enqueue_many, store
from queues.models import DeadLetter, Execution, Job, JobState, Outcome, Worker
from scheduler import engine, leader
from scheduler.definitions import sync
from scheduler.models import Schedule, StepRun, WorkflowRun
from tests.conftest import wait_for
from tests.jobs import run

PIPELINE = """
    name: nightly-report
    description: Extract the day's orders, check them in parallel, publish the report.
    schedule:
      cron: "30 2 * * *"
      timezone: Europe/Berlin
      input: {day: yesterday}
    steps:
      - id: extract
        task: tests.step
        input: {name: extract, day: "${{ input.day }}"}
      - group: checks
        needs: [extract]
        steps:
          - id: totals
            task: tests.step
            input: {name: totals}
          - id: fraud
            task: tests.step
            input: {name: fraud}
      - id: publish
        task: tests.step
        needs: [checks]
        input: {name: publish}
"""


def apply_workflows(folder: Path, **files: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(textwrap.dedent(text))
    sync.apply(folder, created_by="seed")


def step_job(run_: WorkflowRun, step_id: str) -> Job:
    return StepRun.objects.select_related("job").get(run=run_, step_id=step_id).job


@dataclass
class Seeded:
    waiting: Job  # scheduled: an operator could cancel it
    failed: Job  # failed once, retry due
    dead: Job  # dead letter
    done: Job  # succeeded
    run: WorkflowRun  # running: its first step done, the checks waiting
    schedule: Schedule


def everything(folder: Path) -> Seeded:
    """One of each thing an operator could act on."""
    done = run(enqueue("tests.record", key="invoice-4410"), output="invoice-4410")
    failed = run(enqueue("tests.fail", message="smtp timeout", max_attempts=5),
                 error="smtp timeout", error_type="TimeoutError")
    dead = run(enqueue("tests.fail", message="card declined", max_attempts=1),
               error="card declined", error_type="CardDeclined", retryable=False)
    waiting = enqueue("tests.record", key="later", queue="reports", delay=3600)
    apply_workflows(folder, **{"nightly-report": PIPELINE})
    run_ = engine.start_run("nightly-report", {"day": "2024-05-01"}, triggered_by="cron")
    run(step_job(run_, "extract"), output={"rows": 1200})
    engine.sweep()
    return Seeded(waiting=waiting, failed=failed, dead=dead, done=done, run=run_,
                  schedule=Schedule.objects.get())


# -- the README screenshots ---------------------------------------------------------------------

CHARGE_TRACEBACK = """Traceback (most recent call last):
  File "/srv/relay/queues/worker/runner.py", line 212, in run_handler
    result = handler(*job.args, **job.kwargs)
  File "/srv/shop/billing/tasks.py", line 31, in charge_card
    receipt = gateway.charge(order.card_token, amount_cents, idempotency_key=order.key)
  File "/srv/shop/billing/gateway.py", line 88, in charge
    raise {error_type}(body["error"]["message"])
billing.gateway.{error_type}: {message}
"""

# Executions per hour over the last day, oldest hour first: a working day's shape.
HOURLY = [14, 9, 6, 5, 4, 6, 12, 25, 41, 58, 66, 71, 64, 69, 73, 70, 62, 55, 44, 38, 31, 26,
          21, 17]
FAILED_EVERY = 11  # one attempt in about eleven fails (and succeeds on its retry)


def _claim(by: Worker, task: str, queue: str, ids: set[int], limit: int = 1000) -> list:
    batch = store.claim(worker_id=by.pk, queues=[queue], tasks=[task], limit=limit)
    store.release_unstarted([(c.id, c.lease_token) for c in batch if c.id not in ids])
    return [c for c in batch if c.id in ids]


def _hour_of_work(by: Worker, hours_ago: int, count: int, rng: random.Random) -> None:
    """`count` jobs of a few tasks, run (some failing once first), then dated `hours_ago`
    hours back so the 24-hour chart and the lists look like a day of traffic. Dating is
    the one thing done with a plain UPDATE: no engine function moves time."""
    kinds = [("examples.build_report", "reports", lambda i: {"customer_id": 1000 + i}),
             ("examples.notify", "default",
              lambda i: {"channel": "#orders", "message": f"order {48000 + i} shipped"}),
             ("examples.charge_card", "default",
              lambda i: {"order_id": 48000 + i, "amount_cents": 500 + 25 * i})]
    ids: list[int] = []
    for task_name, queue, make in kinds:
        calls = [make(rng.randrange(900)) for _ in range(count // len(kinds) + 1)]
        ids += [j.pk for j in enqueue_many(task_name, calls, queue=queue)]
    wanted = set(ids)
    bad = 0
    for task_name, queue, _ in kinds:
        for delivery in _claim(by, task_name, queue, wanted):
            if rng.randrange(FAILED_EVERY) == 0:
                bad += 1
                store.finish_failure(store.Failure(
                    delivery.id, delivery.lease_token, Outcome.ERROR,
                    error_type="ConnectionError", error_message="upstream timed out after 10 s",
                    traceback="Traceback (most recent call last):\n  ...\n"
                              "ConnectionError: upstream timed out after 10 s\n"))
            else:
                store.ack_success([store.Success(delivery.id, delivery.lease_token,
                                                 {"ok": True})])
    if bad:
        wait_for(lambda: Job.objects.filter(pk__in=ids, state=JobState.FAILED,
                                            run_at__lte=timezone.now()).count() == bad,
                 message="retries to come due")
        for task_name, queue, _ in kinds:
            store.ack_success([store.Success(d.id, d.lease_token, {"ok": True})
                               for d in _claim(by, task_name, queue, wanted)])
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(
        hours=hours_ago)
    for job_id in ids:
        at = start + timedelta(seconds=rng.randrange(3000))
        Job.objects.filter(pk=job_id).update(created_at=at, run_at=at,
                                             finished_at=at + timedelta(seconds=40))
        for n, execution in enumerate(Execution.objects.filter(job_id=job_id).order_by("id")):
            began = at + timedelta(seconds=20 * n)
            Execution.objects.filter(pk=execution.pk).update(
                started_at=began, finished_at=began + timedelta(milliseconds=rng.randrange(
                    80, 4000)))


def _charge_with_history(by: Worker) -> Job:
    """A payment that timed out twice, then was declined for good: three attempts, dated
    back to when an operator would open it (a quarter of an hour later)."""
    job = enqueue("examples.charge_card", order_id=48213, amount_cents=12900,
                  tags=["billing", "eu"], dedup_key="charge:order-48213",
                  backoff={"base": 2, "factor": 2, "cap": 300, "jitter": 0.1})
    errors = [("GatewayTimeout", "no answer from the payment gateway within 10 s", True),
              ("GatewayTimeout", "no answer from the payment gateway within 10 s", True),
              ("CardDeclined", "card declined: insufficient funds (code 51)", False)]
    for error_type, message, retryable in errors:
        delivery = wait_for(lambda: _claim(by, job.task, job.queue, {job.pk}),
                            message="the charge to come due")[0]
        store.finish_failure(store.Failure(
            job.pk, delivery.lease_token, Outcome.ERROR, error_type=error_type,
            error_message=message, retryable=retryable,
            traceback=CHARGE_TRACEBACK.format(error_type=error_type, message=message)))
    start = timezone.now() - timedelta(minutes=14)
    timeline = [(0, 10.0), (12.1, 10.0), (26.3, 0.6)]  # (seconds after start, duration)
    for execution, (after, took) in zip(job.executions.order_by("attempt"), timeline,
                                        strict=True):
        began = start + timedelta(seconds=after)
        Execution.objects.filter(pk=execution.pk).update(
            started_at=began, finished_at=began + timedelta(seconds=took))
    end = start + timedelta(seconds=26.9)
    Job.objects.filter(pk=job.pk).update(created_at=start - timedelta(seconds=0.2),
                                         run_at=start + timedelta(seconds=26.3),
                                         started_at=start + timedelta(seconds=26.3),
                                         finished_at=end)
    DeadLetter.objects.filter(job_id=job.pk).update(created_at=end)
    return Job.objects.get(pk=job.pk)


def _deploy_run(by: Worker) -> WorkflowRun:
    """deploy-pipeline half way: checked out, two checks passed, integration tests on their
    second attempt after a flaky first, build and deploy waiting."""
    run_ = engine.start_run("deploy-pipeline", {"service": "billing", "ref": "v2.14.0"},
                            triggered_by="alice (dashboard)")

    def finish(step: str, output: Any = None, error: str = "") -> None:
        job = step_job(run_, step)
        delivery = wait_for(lambda: _claim(by, job.task, job.queue, {job.pk}),
                            message=f"step {step} to come due")[0]
        if error:
            store.finish_failure(store.Failure(
                job.pk, delivery.lease_token, Outcome.ERROR, error_type="AssertionError",
                error_message=error, traceback=f"Traceback ...\nAssertionError: {error}\n"))
        else:
            store.ack_success([store.Success(job.pk, delivery.lease_token, output)])
        engine.sweep()

    finish("checkout", {"repository": "git@git.internal:platform/app.git", "ref": "v2.14.0",
                        "commit": "4be1c0ffee"})
    finish("unit_tests", {"suite": "unit", "passed": True})
    finish("lint", {"suite": "lint", "passed": True})
    finish("integration_tests", error="payments stub did not answer (flaky)")
    job = step_job(run_, "integration_tests")
    wait_for(lambda: _claim(by, job.task, job.queue, {job.pk}),
             message="the integration tests' second attempt")
    # Dated back so durations read like a real deploy's (seconds to minutes, not ms).
    start = timezone.now() - timedelta(minutes=6)
    WorkflowRun.objects.filter(pk=run_.pk).update(created_at=start, started_at=start)
    for step, began, took in (("checkout", 0, 41), ("unit_tests", 42, 128), ("lint", 42, 16),
                              ("integration_tests", 42, None)):
        StepRun.objects.filter(run=run_, step_id=step).update(
            started_at=start + timedelta(seconds=began),
            finished_at=None if took is None else start + timedelta(seconds=began + took))
    return run_


def _worker(name: str, host: str, pid: int, queues: list[str]) -> Worker:
    from queues.registry import registry

    return store.register_worker(name=name, host=host, pid=pid, queues=queues,
                                 tasks=registry.names(), concurrency=8)


@dataclass
class Showcase:
    charge: Job
    deploy: WorkflowRun


def showcase(folder: Path) -> Showcase:
    """A day of traffic on a small shop: throughput, retries, dead letters, waiting and
    running jobs, two live workers, a deploy half way through."""
    from django.conf import settings

    rng = random.Random(7)
    examples = Path(settings.BASE_DIR) / "relay_project" / "examples" / "workflows"
    for source in examples.glob("*.yaml"):
        (folder / source.name).write_text(source.read_text())
    sync.apply(folder, created_by="deploy")
    web = _worker("worker-a", "app-1", 4127, ["default", "reports"])
    _worker("worker-b", "app-2", 3310, ["default"])
    for hours_ago, count in enumerate(reversed(HOURLY)):
        _hour_of_work(web, hours_ago, count, rng)
    charge = _charge_with_history(web)
    for order, amount in ((48230, 0), (48231, -500)):
        job = enqueue("examples.charge_card", order_id=order, amount_cents=amount)
        run(job, by=web, error=f"order {order}: amount must be positive, got {amount}",
            error_type="queues.exceptions.DoNotRetry", retryable=False)
    for endpoint in ("/v1/rates", "/v1/rates", "/v1/stock"):
        job = enqueue("examples.flaky_api_call", endpoint=endpoint, max_attempts=1)
        run(job, by=web, error=f"{endpoint}: upstream timed out", error_type="ConnectionError",
            retryable=False)
    retrying = enqueue("examples.flaky_api_call", endpoint="/v1/stock", max_attempts=4,
                       backoff={"base": 300, "factor": 2, "cap": 3600, "jitter": 0.1})
    run(retrying, by=web, error="/v1/stock: upstream timed out", error_type="ConnectionError")
    for customer in range(3):
        enqueue("examples.build_report", customer_id=2000 + customer, delay=900 * customer)
    enqueue_many("examples.notify", [{"channel": "#orders", "message": f"order {n} shipped"}
                                     for n in range(48300, 48312)])
    _claim(web, "examples.notify", "default", set(
        Job.objects.filter(task="examples.notify", state=JobState.SCHEDULED)
        .values_list("id", flat=True)[:2]))
    deploy = _deploy_run(web)
    for w in Worker.objects.all():
        store.heartbeat(w.pk)
    leader.acquire("scheduler@ops-1", 3600)
    return Showcase(charge=charge, deploy=deploy)
