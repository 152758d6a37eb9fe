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
