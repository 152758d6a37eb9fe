"""The JSON Schema of a workflow file (YAML or JSON). Graph rules the schema cannot say
(known tasks, known dependencies, no cycles, unique ids, valid cron and conditions) are checked
in `workflow.py`."""

from __future__ import annotations

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
STEP_ID = r"^[A-Za-z_][A-Za-z0-9_]{0,99}$"  # usable as `steps.<id>` in expressions

RETRY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "max_attempts": {"type": ["integer", "null"], "minimum": 1},
        "backoff": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "base": {"type": "number", "exclusiveMinimum": 0},
                "factor": {"type": "number", "minimum": 1},
                "cap": {"type": "number", "exclusiveMinimum": 0},
                "jitter": {"type": "number", "minimum": 0, "maximum": 1},
            },
        },
    },
}

TIMEOUT = {"type": ["number", "null"], "exclusiveMinimum": 0}
QUEUE = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,99}$"}
NEEDS = {
    "type": "array",
    "items": {"type": "string", "minLength": 1},
    "uniqueItems": True,
}

STEP = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "task"],
    "properties": {
        "id": {"type": "string", "pattern": STEP_ID},
        "task": {"type": "string", "minLength": 1, "maxLength": 200},
        "description": {"type": "string"},
        "input": {"type": "object"},
        "needs": NEEDS,
        "when": {"type": "string", "minLength": 1},
        "queue": QUEUE,
        "priority": {"type": "integer", "minimum": -100, "maximum": 100},
        "retry": RETRY,
        "timeout": TIMEOUT,
        "on_failure": {"enum": ["fail_run", "continue"]},
    },
}

GROUP = {
    "type": "object",
    "additionalProperties": False,
    "required": ["group", "steps"],
    "properties": {
        "group": {"type": "string", "pattern": STEP_ID},
        "description": {"type": "string"},
        "needs": NEEDS,
        "steps": {"type": "array", "minItems": 1, "items": STEP},
    },
}

SCHEDULE = {
    "type": "object",
    "additionalProperties": False,
    "oneOf": [{"required": ["cron"]}, {"required": ["interval"]}],
    "properties": {
        "cron": {"type": "string", "minLength": 1},
        "interval": {"type": "integer", "minimum": 1},
        "timezone": {"type": "string", "minLength": 1},
        "input": {"type": "object"},
        "enabled": {"type": "boolean"},
        "misfire": {"enum": ["skip", "run_once"]},
        "misfire_grace": {"type": "integer", "minimum": 0},
        "overlap": {"enum": ["allow", "skip", "queue"]},
        "jitter": {"type": "integer", "minimum": 0},
    },
}

WORKFLOW = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Relay workflow",
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "steps"],
    "properties": {
        "name": {"type": "string", "pattern": NAME},
        "description": {"type": "string"},
        "input": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "schema": {"type": "object"},
                "defaults": {"type": "object"},
            },
        },
        "defaults": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"queue": QUEUE, "retry": RETRY, "timeout": TIMEOUT,
                           "priority": {"type": "integer", "minimum": -100, "maximum": 100}},
        },
        "schedule": SCHEDULE,
        "steps": {
            "type": "array",
            "minItems": 1,
            "items": {"if": {"type": "object", "required": ["group"]}, "then": GROUP,
                      "else": STEP},
        },
    },
}
