"""Small tasks with the shapes real work has: a report, a flaky call, a long job."""

from __future__ import annotations

import random
import time

from queues import DoNotRetry, task


@task(name="examples.build_report", queue="reports", max_attempts=3)
def build_report(customer_id: int, period: str = "monthly") -> dict:
    time.sleep(0.2)
    return {"customer_id": customer_id, "period": period, "rows": random.randint(10, 500)}


@task(name="examples.flaky_api_call", max_attempts=4, backoff={"base": 2, "factor": 2,
                                                               "cap": 60, "jitter": 0.1})
def flaky_api_call(endpoint: str) -> dict:
    if random.random() < 0.6:
        raise ConnectionError(f"{endpoint}: upstream timed out")
    return {"endpoint": endpoint, "status": 200}


@task(name="examples.charge_card", max_attempts=3)
def charge_card(order_id: int, amount_cents: int) -> dict:
    if amount_cents <= 0:
        raise DoNotRetry(f"order {order_id}: amount must be positive, got {amount_cents}")
    return {"order_id": order_id, "charged": amount_cents}


@task(name="examples.migrate_rows", takes_context=True, ack_timeout=30)
def migrate_rows(context, table: str, batches: int = 10) -> dict:
    for done in range(1, batches + 1):
        time.sleep(0.3)
        context.extend_lease(progress={"done": done, "total": batches})
    return {"table": table, "batches": batches}


# -- steps of the example workflows (relay_project/examples/workflows/) -----------------------

@task(name="examples.checkout")
def checkout(repository: str, ref: str) -> dict:
    time.sleep(0.2)
    return {"repository": repository, "ref": ref, "commit": f"{random.getrandbits(40):010x}"}


@task(name="examples.run_checks", max_attempts=2)
def run_checks(suite: str, commit: str) -> dict:
    time.sleep(random.uniform(0.3, 1.0))
    return {"suite": suite, "commit": commit, "passed": True}


@task(name="examples.build_image")
def build_image(commit: str, service: str) -> dict:
    time.sleep(0.5)
    return {"image": f"registry.internal/{service}:{commit}"}


@task(name="examples.deploy", takes_context=True, ack_timeout=60)
def deploy(context, image: str, environment: str, batches: int = 3) -> dict:
    for done in range(1, batches + 1):
        time.sleep(0.3)
        context.extend_lease(progress={"batch": done, "of": batches})
    return {"image": image, "environment": environment, "healthy": True}


@task(name="examples.notify")
def notify(channel: str, message: str) -> dict:
    return {"channel": channel, "message": message}


@task(name="examples.collect_diagnostics")
def collect_diagnostics(service: str, window_minutes: int = 30) -> dict:
    time.sleep(0.3)
    return {"service": service, "error_rate": round(random.uniform(0, 0.2), 3),
            "window_minutes": window_minutes}


@task(name="examples.restart_service", max_attempts=3)
def restart_service(service: str, reason: str) -> dict:
    time.sleep(0.5)
    return {"service": service, "restarted": True, "reason": reason}


@task(name="examples.check_health", max_attempts=5, backoff={"base": 1, "factor": 2, "cap": 10})
def check_health(service: str) -> dict:
    return {"service": service, "healthy": True}
