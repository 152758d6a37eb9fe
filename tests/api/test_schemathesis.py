"""Property-based run of the whole API against its own schema, as an operator.

schemathesis reads /api/schema/ from the WSGI app (with an operator's token, since the schema
needs a Relay role too) and calls every operation with generated requests, valid and not,
on a database with real jobs, runs and schedules. Every answer must be documented: no 5xx,
a documented status code and content type, and a body that matches the schema.

Bounded: MAX_EXAMPLES derandomized examples per operation and mode (valid, invalid), so the
run is the same every time and takes seconds, not minutes. Each operation starts from the
same world (its changes are rolled back), and all failing operations are reported at once.
The operations are driven through schemathesis' Hypothesis strategies rather than its
pytest plugin, whose lazy-schema loader does not run under pytest 9.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dashboard.models import ApiToken

MAX_EXAMPLES = 20  # per operation and mode: a bounded run, the same on every machine
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture
def operator_headers(world, all_users) -> dict[str, str]:
    _, raw = ApiToken.issue(all_users["operator"], "schemathesis")
    return {"Authorization": f"Bearer {raw}"}


@pytest.fixture
def wsgi_app():
    """The project's WSGI app, keeping the test's database connection open between requests
    (as Django's test client does): the test's transaction holds the data."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(wsgi_app, operator_headers):
    return schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app, headers=operator_headers)


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation, from the same generator that serves /api/schema/
    (a test below checks the served schema has exactly these)."""
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    return sorted((method.upper(), path) for path, item in paths.items() for method in item)


OPERATIONS = _operations()


def test_the_served_schema_has_every_operation(api_schema):
    served = sorted((op.ok().method.upper(), op.ok().path)
                    for op in api_schema.get_all_operations())
    assert served == OPERATIONS


def known_objects(world) -> dict[str, dict[str, object]]:
    """Path parameters naming real objects, so generated requests also reach the views'
    success paths (random ids mostly find nothing)."""
    return {
        "/api/v1/jobs/": {"id": world.dead.pk},
        "/api/v1/executions/": {"id": world.dead.executions.get().pk},
        "/api/v1/dead-letters/": {"id": world.dead.dead_letters.get().pk},
        "/api/v1/runs/": {"id": world.failed_run.pk},
        "/api/v1/schedules/": {"id": world.schedule.pk},
        "/api/v1/workers/": {"id": world.worker.pk},
        "/api/v1/workflows/": {"name": "other-flow"},
    }


# Bodies that name a real task or workflow (random names are all refused with 400).
KNOWN_BODIES = {
    ("POST", "/api/v1/jobs/"): {"task": "tests.record", "kwargs": {"key": "generated"},
                                "dedup_key": "schemathesis"},
    ("POST", "/api/v1/runs/"): {"workflow": "other-flow", "input": {"source": "generated"}},
}


def naming_real_targets(case):
    """A generated body with its task or workflow replaced by a real one, so every other
    option is exercised on a request that can succeed."""
    if isinstance(case.body, dict):
        if "task" in case.body:
            case.body["task"] = "tests.step"  # takes name and any other keyword
            if isinstance(case.body.get("kwargs"), dict):
                case.body["kwargs"]["name"] = "generated"
            else:
                case.body["kwargs"] = {"name": "generated"}
            case.body.pop("args", None)
            case.body.pop("meta", None)  # keys Relay reserves would be refused (400)
        if "workflow" in case.body:
            case.body["workflow"] = "team-a-flow"  # takes any input
    return case


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_every_operation_answers_as_documented(world, api_schema, operator_headers, mode):
    failures: dict[str, BaseException] = {}
    for method, path in OPERATIONS:
        with rolled_back():  # every operation starts from the same world
            try:
                exercise(api_schema[path][method], world, operator_headers, mode)
            except (AssertionError, FailureGroup) as exc:
                failures[f"{method} {path}"] = exc
    assert not failures, "\n\n".join(f"== {op} ==\n{exc}" for op, exc in failures.items())


def exercise(operation, world, headers: dict[str, str], mode: GenerationMode) -> None:
    """MAX_EXAMPLES generated requests to one operation, each response checked."""
    method, path = operation.method.upper(), operation.path
    strategy = operation.as_strategy(generation_mode=mode)
    if "{" in path:
        known = next(v for k, v in known_objects(world).items() if path.startswith(k))
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=known) | strategy
    elif (method, path) in KNOWN_BODIES and mode == GenerationMode.POSITIVE:
        strategy = (operation.as_strategy(body=KNOWN_BODIES[method, path])
                    | operation.as_strategy().map(naming_real_targets) | strategy)

    @given(case=strategy)
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def call(case):
        case.call_and_validate(headers=headers, checks=CHECKS)

    call()


@contextmanager
def rolled_back():
    with transaction.atomic():
        yield
        transaction.set_rollback(True)
