"""Django admin for workflows and schedules: definitions and runs are read-only; runs are
cancelled and rerun, schedules paused, resumed and triggered only through the engine's own
functions (the actions below)."""

from __future__ import annotations

import zoneinfo

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from scheduler import engine, firing
from scheduler.models import Firing, Schedule, StepRun, WorkflowDefinition, WorkflowRun


class ReadOnly:
    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(WorkflowDefinition)
class WorkflowDefinitionAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("name", "version", "source_file", "git_commit", "created_by", "created_at")
    list_filter = ("name",)
    search_fields = ("name", "description", "content_hash", "git_commit")
    readonly_fields = ("name", "version", "description", "source_file", "git_commit",
                       "content_hash", "created_by", "created_at", "spec", "source_text")


class StepRunInline(ReadOnly, admin.TabularInline):
    model = StepRun
    extra = 0
    fields = ("step_id", "group", "task", "state", "job", "attempt", "input", "output",
              "error", "started_at", "finished_at")
    readonly_fields = fields


def _each(modeladmin, request, queryset: QuerySet, action, verb: str) -> None:
    done = 0
    for obj in queryset:
        try:
            action(obj, request)
            done += 1
        except engine.WorkflowError as exc:
            modeladmin.message_user(request, str(exc), messages.WARNING)
    if done:
        modeladmin.message_user(request, f"{verb} {done}.", messages.SUCCESS)


@admin.action(description="Cancel selected runs", permissions=["operate"])
def cancel_runs(modeladmin, request, queryset):
    _each(modeladmin, request, queryset,
          lambda run, r: engine.cancel_run(run, by=r.user.get_username()), "Cancelled")


@admin.action(description="Rerun selected runs from their failed steps", permissions=["operate"])
def rerun_runs(modeladmin, request, queryset):
    _each(modeladmin, request, queryset,
          lambda run, r: engine.rerun(run, by=r.user.get_username()), "Rerun")


@admin.register(WorkflowRun)
class WorkflowRunAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("id", "definition", "state", "triggered_by", "created_at", "finished_at")
    list_filter = ("state", "definition__name")
    search_fields = ("=id", "triggered_by", "error")
    list_select_related = ("definition",)
    show_full_result_count = False
    inlines = [StepRunInline]
    actions = [cancel_runs, rerun_runs]

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("scheduler.change_workflowrun")


class FiringInline(ReadOnly, admin.TabularInline):
    model = Firing
    extra = 0
    fields = ("due_at", "outcome", "fired_at", "run", "job", "note", "recorded_by")
    readonly_fields = fields
    ordering = ("-due_at",)


@admin.action(description="Pause selected schedules", permissions=["change"])
def pause(modeladmin, request, queryset):
    count = queryset.update(enabled=False)
    modeladmin.message_user(request, f"Paused {count}.", messages.SUCCESS)


@admin.action(description="Resume selected schedules (from now; missed times are not run)",
              permissions=["change"])
def resume(modeladmin, request, queryset):
    for schedule in queryset:
        schedule.enabled = True
        schedule.next_fire_at = firing.next_due(schedule, firing.now())
        schedule.save(update_fields=["enabled", "next_fire_at", "updated_at"])
    modeladmin.message_user(request, "Resumed.", messages.SUCCESS)


@admin.action(description="Trigger selected schedules now", permissions=["change"])
def trigger(modeladmin, request, queryset):
    for schedule in queryset:
        firing.trigger(schedule, by=request.user.get_username())
    modeladmin.message_user(request, "Triggered.", messages.SUCCESS)


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
    actions = [pause, resume, trigger]

    def save_model(self, request, obj: Schedule, form, change: bool) -> None:
        timing = {"kind", "cron", "interval", "timezone", "enabled"}
        if not change or timing & set(form.changed_data) or obj.next_fire_at is None:
            obj.next_fire_at = firing.next_due(obj, firing.now())
        super().save_model(request, obj, form, change)
