"""Django admin for workflows and schedules.

Definitions, runs, steps and firings are history: read-only here. Runs change only through
the engine (cancel, rerun) and schedules are paused, resumed and triggered through the
control plane's actions (`dashboard.admin` adds them, with audit entries). Run input, step
input and output are not shown by these classes (they may hold secrets); `dashboard.admin`
extends them with masked displays.
"""

from __future__ import annotations

import zoneinfo

from django import forms
from django.contrib import admin

from queues.admin import CappedPaginator, ReadOnlyAdmin, ReadOnlyInline
from scheduler import firing
from scheduler.models import (
    Firing,
    Schedule,
    SchedulerLease,
    StepRun,
    WorkflowDefinition,
    WorkflowRun,
)


class DefinitionNameFilter(admin.SimpleListFilter):
    """Workflow names from the (small) definitions table, not from the runs."""

    title = "workflow"
    parameter_name = "workflow"
    field = "definition__name"

    def lookups(self, request, model_admin):
        names = (WorkflowDefinition.objects.order_by("name").values_list("name", flat=True)
                 .distinct())
        return [(n, n) for n in names]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{self.field: self.value()})
        return queryset


class StepWorkflowFilter(DefinitionNameFilter):
    field = "run__definition__name"


@admin.register(WorkflowDefinition)
class WorkflowDefinitionAdmin(ReadOnlyAdmin):
    list_display = ("name", "version", "source_file", "git_commit", "created_by", "created_at")
    list_filter = ("name",)
    search_fields = ("name", "description", "content_hash", "git_commit")
    fields = ("name", "version", "description", "source_file", "git_commit", "content_hash",
              "created_by", "created_at", "source_text")
    readonly_fields = fields


class StepRunInline(ReadOnlyInline, admin.TabularInline):
    model = StepRun
    fields = ("step_id", "group", "task", "state", "job", "attempt", "error", "started_at",
              "finished_at")
    readonly_fields = fields
    ordering = ("id",)


RUN_FIELDS = ("id", "definition", "state", "triggered_by", "schedule", "error", "reruns",
              "created_at", "started_at", "finished_at")


@admin.register(WorkflowRun)
class WorkflowRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "definition", "state", "triggered_by", "schedule", "created_at",
                    "finished_at", "reruns")
    list_filter = ("state", DefinitionNameFilter)
    search_fields = ("=id", "triggered_by", "error")
    list_select_related = ("definition", "schedule")
    paginator = CappedPaginator
    show_full_result_count = False
    fields = RUN_FIELDS
    readonly_fields = RUN_FIELDS
    inlines = [StepRunInline]


STEP_FIELDS = ("id", "run", "step_id", "group", "task", "state", "job", "attempt", "error",
               "started_at", "finished_at")


@admin.register(StepRun)
class StepRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "run", "step_id", "task", "state", "job", "attempt", "started_at",
                    "finished_at")
    list_filter = ("state", StepWorkflowFilter)
    search_fields = ("=run__id", "=job__id", "step_id", "task")
    list_select_related = ("run__definition", "job")
    raw_id_fields = ("run", "job")
    paginator = CappedPaginator
    show_full_result_count = False
    fields = STEP_FIELDS
    readonly_fields = STEP_FIELDS


FIRINGS_SHOWN = 50


class NewestFiringsFormSet(forms.BaseInlineFormSet):
    """A schedule's newest firings only: one firing every minute makes thousands."""

    def get_queryset(self):
        if not hasattr(self, "_newest"):
            self._newest = super().get_queryset()[:FIRINGS_SHOWN]
        return self._newest


class FiringInline(ReadOnlyInline, admin.TabularInline):
    model = Firing
    formset = NewestFiringsFormSet
    fields = ("due_at", "outcome", "fired_at", "run", "job", "note", "recorded_by")
    readonly_fields = fields
    ordering = ("-due_at",)


@admin.register(Firing)
class FiringAdmin(ReadOnlyAdmin):
    list_display = ("id", "schedule", "due_at", "outcome", "fired_at", "run", "job",
                    "recorded_by", "note")
    list_filter = ("outcome", "schedule")
    search_fields = ("schedule__name", "note", "recorded_by")
    list_select_related = ("schedule", "run", "job")
    paginator = CappedPaginator
    show_full_result_count = False
    fields = ("id", "schedule", "due_at", "outcome", "fired_at", "run", "job", "note",
              "recorded_by", "created_at")
    readonly_fields = fields


@admin.register(SchedulerLease)
class SchedulerLeaseAdmin(ReadOnlyAdmin):
    list_display = ("name", "holder", "acquired_at", "last_tick_at", "expires_at")
    fields = list_display
    readonly_fields = list_display


class ScheduleForm(forms.ModelForm):
    class Meta:
        model = Schedule
        fields = ("name", "kind", "cron", "interval", "timezone", "target_kind", "target",
                  "input", "enabled", "misfire_policy", "misfire_grace", "overlap_policy",
                  "jitter")

    def clean(self):
        from queues.registry import registry
        from scheduler.definitions.workflow import cron_problem

        data = super().clean()
        if data.get("kind") == Schedule.Kind.CRON:
            problem = cron_problem(data.get("cron") or "")
            if problem:
                self.add_error("cron", problem)
        elif not data.get("interval"):
            self.add_error("interval", "an interval schedule needs a number of seconds")
        try:
            zoneinfo.ZoneInfo(data.get("timezone") or "")
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            self.add_error("timezone", "unknown time zone (use an IANA name such as "
                                       "Europe/Berlin)")
        target = data.get("target")
        if data.get("target_kind") == Schedule.Target.TASK and target not in registry:
            self.add_error("target", f"no task named {target!r} is registered")
        if (data.get("target_kind") == Schedule.Target.WORKFLOW
                and not WorkflowDefinition.objects.filter(name=target).exists()):
            self.add_error("target", f"no workflow named {target!r} has been applied")
        return data


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    list_display = ("name", "timing", "timezone", "target_kind", "target", "enabled",
                    "next_fire_at", "last_fired_at", "misfire_policy", "overlap_policy")
    list_filter = ("enabled", "target_kind", "kind")
    search_fields = ("name", "target")
    readonly_fields = ("next_fire_at", "last_fired_at", "source", "created_at", "updated_at")
    inlines = [FiringInline]

    def save_model(self, request, obj: Schedule, form, change: bool) -> None:
        timing = {"kind", "cron", "interval", "timezone", "enabled"}
        if not change or timing & set(form.changed_data) or obj.next_fire_at is None:
            obj.next_fire_at = firing.next_due(obj, firing.now())
        super().save_model(request, obj, form, change)


# Alert channels and deliveries.
from scheduler.alerts import admin as alerts_admin  # noqa: E402, F401
