"""Jobs, executions, dead letters and workers as the API shows them, and the enqueue request.

`EnqueueSerializer` checks the same options as `queues.enqueue` (and the same bounds), so a
bad request is answered with the field and the problem before anything is written; the
enqueue itself still validates everything again.
"""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from queues.api.fields import (
    AwareDateTimeField,
    FiniteFloatField,
    JSONListField,
    JSONObjectField,
    MaskedAny,
    MaskedList,
    MaskedObject,
)
from queues.models import DeadLetter, Execution, Job, JobState, Outcome, Worker
from queues.registry import QUEUE_NAME_RE, registry

# Bounds that keep every computed time inside what both databases store.
MAX_DELAY = 10 * 365 * 86400  # seconds: enqueue at most ten years ahead
MAX_DURATION = 30 * 86400  # seconds: longest time limit, lease or retry delay
MAX_ATTEMPTS = 2_147_483_647  # the column's range
MAX_TAGS = 50
# enqueue()'s own parameters: a task argument of the same name cannot be passed through it.
OPTION_NAMES = ("task", "queue", "priority", "run_at", "delay", "dedup_key", "max_attempts",
                "timeout", "ack_timeout", "tags", "meta", "backoff")


class WorkerRefMixin(serializers.Serializer):
    worker = serializers.IntegerField(source="worker_id", allow_null=True, read_only=True)
    worker_name = serializers.CharField(source="worker.name", allow_null=True, read_only=True,
                                        help_text="The worker's name (host:pid).")


class JobSerializer(WorkerRefMixin, serializers.ModelSerializer):
    """A job in a list: everything but its result, progress and retry policy."""

    args = MaskedList(help_text="Positional arguments (secret-looking values masked).")
    kwargs = MaskedObject(help_text="Keyword arguments (secret-looking values masked).")
    tags = serializers.ListField(child=serializers.CharField(), read_only=True)
    meta = MaskedObject(help_text="Data other apps attach (workflow run, trigger ...).")

    class Meta:
        model = Job
        fields = ("id", "task", "queue", "priority", "state", "args", "kwargs", "tags", "meta",
                  "dedup_key", "attempts", "max_attempts", "timeout", "ack_timeout", "run_at",
                  "created_at", "started_at", "finished_at", "worker", "worker_name",
                  "cancel_requested_at", "last_error_type", "last_error_message")
        read_only_fields = fields


class ExecutionSerializer(WorkerRefMixin, serializers.ModelSerializer):
    """One attempt of a job."""

    output = MaskedAny(allow_null=True, help_text="What the handler returned (masked).")
    late_outcome = serializers.ChoiceField(
        choices=Outcome.choices, allow_blank=True, read_only=True,
        help_text="A report that came after the lease was lost (kept, not applied).")
    duration = serializers.FloatField(read_only=True, allow_null=True,
                                      help_text="Seconds; null while the attempt runs.")

    class Meta:
        model = Execution
        fields = ("id", "job", "attempt", "worker", "worker_name", "started_at", "finished_at",
                  "duration", "outcome", "output", "error_type", "error_message", "traceback",
                  "late_outcome", "late_reported_at")
        read_only_fields = fields


class JobDetailSerializer(JobSerializer):
    """A job with its result, retry policy and its newest attempts."""

    result = MaskedAny(allow_null=True, help_text="The successful attempt's output (masked).")
    progress = MaskedAny(allow_null=True)
    backoff = serializers.DictField(child=serializers.FloatField(), read_only=True)
    executions = serializers.SerializerMethodField(
        help_text="The newest attempts, newest first (all of them: /executions/?job=<id>).")

    class Meta(JobSerializer.Meta):
        fields = (*JobSerializer.Meta.fields, "result", "progress", "backoff", "executions")
        read_only_fields = fields

    EXECUTIONS_SHOWN = 50

    @extend_schema_field(ExecutionSerializer(many=True))
    def get_executions(self, job: Job) -> list[dict[str, Any]]:
        rows = job.executions.select_related("worker").order_by("-id")[: self.EXECUTIONS_SHOWN]
        return ExecutionSerializer(rows, many=True, context=self.context).data


class EnqueuedJobSerializer(JobDetailSerializer):
    """The job an enqueue created (201) or found by its dedup key (200)."""

    deduplicated = serializers.BooleanField(
        read_only=True, help_text="True when an active job with this dedup key was returned.")

    class Meta(JobDetailSerializer.Meta):
        fields = (*JobDetailSerializer.Meta.fields, "deduplicated")
        read_only_fields = fields


class DeadLetterSerializer(serializers.ModelSerializer):
    """A job that needs an operator, and how it was resolved."""

    task = serializers.CharField(source="job.task", read_only=True)
    queue = serializers.CharField(source="job.queue", read_only=True)
    job_state = serializers.ChoiceField(source="job.state", choices=JobState.choices,
                                        read_only=True)
    resolved_by = serializers.CharField(source="resolved_by.get_username", allow_null=True,
                                        read_only=True)
    resolution = serializers.ChoiceField(choices=DeadLetter.Resolution.choices,
                                         allow_blank=True, read_only=True,
                                         help_text="Empty while the letter is open.")

    class Meta:
        model = DeadLetter
        fields = ("id", "job", "task", "queue", "job_state", "reason", "error_type",
                  "error_message", "attempts", "created_at", "resolved_at", "resolution",
                  "resolved_by", "resolution_note")
        read_only_fields = fields


class WorkerSerializer(serializers.ModelSerializer):
    queues = serializers.ListField(child=serializers.CharField(), read_only=True)
    tasks = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = Worker
        fields = ("id", "name", "host", "pid", "queues", "tasks", "concurrency", "state",
                  "started_at", "last_heartbeat_at", "stopped_at")
        read_only_fields = fields


# -- input --------------------------------------------------------------------------------------

class BackoffSerializer(serializers.Serializer):
    """Retry delays: min(cap, base * factor ** (attempt - 1)), +/- jitter. Omitted keys keep
    the task's (or the default) policy."""

    base = FiniteFloatField(min_value=0, max_value=MAX_DURATION, required=False)
    factor = FiniteFloatField(min_value=1, max_value=100, required=False)
    cap = FiniteFloatField(min_value=0, max_value=MAX_DURATION, required=False)
    jitter = FiniteFloatField(min_value=0, max_value=1, required=False)


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True,
                                   help_text="Why: written to the audit log.")


class EnqueueSerializer(ReasonSerializer):
    """`queues.enqueue(task, *args, **kwargs, <options>)` as JSON. Options left out take the
    task's own settings; `max_attempts: null` retries forever and `timeout: null` lifts the
    time limit."""

    task = serializers.CharField(max_length=200, help_text="A registered task name.")
    args = JSONListField(required=False, help_text="Positional arguments.")
    kwargs = JSONObjectField(required=False, help_text="Keyword arguments.")
    queue = serializers.CharField(
        max_length=100, required=False,
        validators=[RegexValidator(QUEUE_NAME_RE, "1-100 letters, digits and _ . : - "
                                                  "starting with a letter or digit.")],
        help_text="Default: the task's queue.")
    priority = serializers.IntegerField(min_value=-100, max_value=100, required=False,
                                        help_text="Higher runs first.")
    run_at = AwareDateTimeField(required=False, help_text="Run at this time (with offset).")
    delay = FiniteFloatField(min_value=0, max_value=MAX_DELAY, required=False,
                             help_text="Run after this many seconds.")
    dedup_key = serializers.CharField(
        min_length=1, max_length=255, required=False, trim_whitespace=False,
        help_text="While a job with this key is active, enqueueing it again returns that job "
                  "(200) instead of a new one (201).")
    max_attempts = serializers.IntegerField(min_value=1, max_value=MAX_ATTEMPTS, required=False,
                                            allow_null=True, help_text="null: retry forever.")
    timeout = FiniteFloatField(min_value=0.001, max_value=MAX_DURATION, required=False,
                               allow_null=True, help_text="Seconds per attempt; null: none.")
    ack_timeout = FiniteFloatField(min_value=0.001, max_value=MAX_DURATION, required=False,
                                   help_text="Lease length in seconds.")
    tags = serializers.ListField(
        child=serializers.CharField(min_length=1, max_length=100, trim_whitespace=False),
        max_length=MAX_TAGS, required=False)
    meta = JSONObjectField(required=False, help_text="Free-form data kept with the job.")
    backoff = BackoffSerializer(required=False)

    def validate_task(self, name: str) -> str:
        if name not in registry:
            raise serializers.ValidationError(f"No task named {name!r} is registered.")
        return name

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if "run_at" in data and "delay" in data:
            raise serializers.ValidationError({"delay": ["Give run_at or delay, not both."]})
        kwargs = data.get("kwargs") or {}
        clash = sorted(set(kwargs) & set(OPTION_NAMES))
        if clash:
            raise serializers.ValidationError({"kwargs": (
                f"{', '.join(clash)} would be taken as enqueue options; a task argument "
                f"cannot have these names.")})
        problem = registry.get(data["task"]).argument_problem(data.get("args") or [],
                                    kwargs)
        if problem:
            raise serializers.ValidationError({"kwargs" if kwargs else "args": problem})
        return data

    def options(self) -> dict[str, Any]:
        """The validated options besides task and queue (only those given), as
        `queues.enqueue` takes them."""
        data = self.validated_data
        return {name: data[name] for name in OPTION_NAMES if name in data
                and name not in ("task", "queue")}
