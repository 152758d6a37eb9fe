"""Django admin for the queue: read what ran, with which input, and how it ended.

Rows are changed only through the queue's own functions (the actions below), never by
editing fields, so the admin cannot put a job in a state the engine does not allow.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from queues import operations
from queues.exceptions import InvalidTransition
from queues.models import DeadLetter, Execution, Job, Worker


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ExecutionInline(admin.TabularInline):
    model = Execution
    extra = 0
    can_delete = False
    fields = ("attempt", "outcome", "worker", "started_at", "finished_at", "error_type",
              "error_message", "late_outcome")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


def _each(modeladmin, request, queryset: QuerySet, action, verb: str) -> None:
    done = failed = 0
    for job in queryset:
        try:
            action(job, request)
            done += 1
        except InvalidTransition as exc:
            failed += 1
            modeladmin.message_user(request, str(exc), messages.WARNING)
    if done:
        modeladmin.message_user(request, f"{verb} {done} job(s).", messages.SUCCESS)


@admin.action(description="Cancel selected jobs", permissions=["operate"])
def cancel_jobs(modeladmin, request, queryset):
    _each(modeladmin, request, queryset, lambda job, r: operations.cancel(job), "Cancelled")


@admin.action(description="Retry selected jobs (failed, dead-lettered or cancelled)",
              permissions=["operate"])
def retry_jobs(modeladmin, request, queryset):
    _each(modeladmin, request, queryset,
          lambda job, r: operations.retry(job, user=r.user, note="retried from the admin"),
          "Retried")


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ("id", "task", "queue", "state", "priority", "attempts", "max_attempts",
                    "run_at", "finished_at", "worker", "last_error_type")
    list_filter = ("state", "queue", "task")
    search_fields = ("=id", "task", "dedup_key", "last_error_message")
    show_full_result_count = False  # never COUNT(*) the whole jobs table
    list_select_related = ("worker",)
    inlines = [ExecutionInline]
    actions = [cancel_jobs, retry_jobs]

    def has_operate_permission(self, request: HttpRequest) -> bool:
        # Acting on jobs needs the change permission even though fields are never edited.
        return request.user.has_perm("queues.change_job")


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdmin):
    list_display = ("id", "job", "attempt", "outcome", "worker", "started_at", "finished_at",
                    "error_type", "late_outcome")
    list_filter = ("outcome",)
    search_fields = ("=job__id", "error_type", "error_message")
    show_full_result_count = False
    list_select_related = ("job", "worker")


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ("id", "job", "reason", "error_type", "attempts", "created_at", "resolution",
                    "resolved_by", "resolved_at")
    list_filter = ("reason", "resolution")
    search_fields = ("=job__id", "error_type", "error_message")
    list_select_related = ("job", "resolved_by")


@admin.register(Worker)
class WorkerAdmin(ReadOnlyAdmin):
    list_display = ("name", "state", "queues", "concurrency", "started_at", "last_heartbeat_at",
                    "stopped_at")
    list_filter = ("state",)
    search_fields = ("name", "host")
