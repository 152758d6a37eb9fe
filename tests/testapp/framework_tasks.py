"""Functions declared with Django's own `@task` (django.tasks on Django 6, the django-tasks
backport on 5.2): Relay runs them through queues.django_tasks_backend. Imported by this app's
tasks.py, so every worker knows them."""

from __future__ import annotations

import os

from tests.testapp.models import Ledger

try:
    from django.tasks import task
except ImportError:
    from django_tasks import task


@task
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@task(takes_context=True)
def flaky(context, key: str, succeed_on: int = 3) -> dict:
    """Fail until the given attempt, recording what Django's context says about each one."""
    Ledger.objects.create(job_id=int(context.task_result.id), attempt=context.attempt,
                          event=str(context.task_result.status), key=key, pid=os.getpid())
    if context.attempt < succeed_on:
        raise RuntimeError(f"attempt {context.attempt}: not yet")
    return {"key": key, "attempt": context.attempt, "relay_attempt": context.job.attempt}


@task
def broken(reason: str) -> None:
    raise ValueError(reason)


@task
async def double(value: int) -> int:
    return value * 2


@task
def echo(queue: str, priority: int, meta: dict) -> list:
    """Arguments named like Relay's enqueue options stay arguments."""
    return [queue, priority, meta]
