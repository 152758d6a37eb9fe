"""Workflow definitions and their versions, runs with their steps, schedules, and the start
request, as the API shows and accepts them."""

from __future__ import annotations

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from queues.api.fields import JSONObjectField, MaskedAny, MaskedObject
from queues.api.serializers import ReasonSerializer
from scheduler.definitions.schema import NAME
from scheduler.models import Schedule, StepRun, WorkflowDefinition, WorkflowRun


class WorkflowSerializer(serializers.Serializer):
    """A workflow: its newest version and how many there are."""

    name = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True, help_text="Of the newest version.")
    latest_version = serializers.IntegerField(read_only=True)
    versions = serializers.IntegerField(read_only=True, help_text="Versions applied so far.")
    updated_at = serializers.DateTimeField(read_only=True,
                                           help_text="When the newest version was applied.")


class WorkflowVersionSerializer(serializers.ModelSerializer):
    """One immutable version, as validated from its file (the file itself is in Git)."""

    spec = MaskedObject(help_text="The normalised definition (secret-looking values masked).")

    class Meta:
        model = WorkflowDefinition
        fields = ("name", "version", "description", "content_hash", "source_file",
                  "git_commit", "created_by", "created_at", "spec")
        read_only_fields = fields


class RunSerializer(serializers.ModelSerializer):
    """A workflow run in a list."""

    workflow = serializers.CharField(source="definition.name", read_only=True)
    version = serializers.IntegerField(source="definition.version", read_only=True)
    schedule = serializers.CharField(source="schedule.name", allow_null=True, read_only=True,
                                     help_text="The schedule that fired it, if any.")

    class Meta:
        model = WorkflowRun
        fields = ("id", "workflow", "version", "state", "triggered_by", "schedule", "error",
                  "reruns", "created_at", "started_at", "finished_at")
        read_only_fields = fields


class StepSerializer(serializers.ModelSerializer):
    input = MaskedAny(allow_null=True, help_text="Resolved keyword arguments (masked).")
    output = MaskedAny(allow_null=True)
    job = serializers.IntegerField(source="job_id", allow_null=True, read_only=True,
                                   help_text="The step's latest job.")

    class Meta:
        model = StepRun
        fields = ("step_id", "group", "task", "state", "job", "attempt", "input", "output",
                  "error", "started_at", "finished_at")
        read_only_fields = fields


class RunDetailSerializer(RunSerializer):
    """A run with its input and every step."""

    input = MaskedObject()
    steps = serializers.SerializerMethodField()

    class Meta(RunSerializer.Meta):
        fields = (*RunSerializer.Meta.fields, "input", "steps")
        read_only_fields = fields

    @extend_schema_field(StepSerializer(many=True))
    def get_steps(self, run: WorkflowRun) -> list:
        steps = StepRun.objects.filter(run=run).order_by("id")
        return StepSerializer(steps, many=True, context=self.context).data


class ScheduleSerializer(serializers.ModelSerializer):
    input = MaskedObject(help_text="Workflow input or task keyword arguments (masked).")

    class Meta:
        model = Schedule
        fields = ("id", "name", "kind", "cron", "interval", "timezone", "target_kind", "target",
                  "input", "enabled", "misfire_policy", "misfire_grace", "overlap_policy",
                  "jitter", "next_fire_at", "last_fired_at", "source")
        read_only_fields = fields


class TriggeredSerializer(serializers.Serializer):
    """What a schedule triggered by hand started: a run (workflow) or a job (task)."""

    target_kind = serializers.ChoiceField(choices=Schedule.Target.choices, read_only=True)
    run = serializers.IntegerField(allow_null=True, read_only=True)
    job = serializers.IntegerField(allow_null=True, read_only=True)


class StartRunSerializer(ReasonSerializer):
    workflow = serializers.CharField(
        max_length=100, validators=[RegexValidator(NAME, "Not a workflow name.")],
        help_text="Runs the newest version.")
    input = JSONObjectField(required=False, help_text="Checked against the workflow's schema; "
                                                      "its defaults fill in what is left out.")
