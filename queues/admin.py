"""Django admin for the queue: read what ran, when, where, and how it ended.

Every queue row is read-only here: rows change only through the queue's own functions, so the
admin cannot put a job in a state the engine does not allow. Argument, result and output JSON
is not shown by these classes at all (it may hold secrets); the control plane
(`dashboard.admin`) extends them with masked displays and with the operator actions (cancel,
retry, rerun, discard, resume), which go through the same functions as the dashboard and
write the same audit entries.
"""

from __future__ import annotations

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

from queues.models import DeadLetter, Execution, Job, QueuePause, Worker

# Admin lists over the big tables count at most this many rows (pages beyond are not
# offered): an exact COUNT(*) over millions of jobs would make every list page slow.
COUNT_CAP = 10_000


class CappedPaginator(Paginator):
    """Counts up to COUNT_CAP rows (`SELECT COUNT(*) FROM (... LIMIT n)`), never the table."""

    @cached_property
    def count(self) -> int:
        if isinstance(self.object_list, QuerySet):
            return self.object_list.order_by()[:COUNT_CAP].count()
        return min(len(self.object_list), COUNT_CAP)


class ReadOnlyAdmin(admin.ModelAdmin):
    """History: viewable by anyone with the view permission, changeable by no one."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class BigTableAdmin(ReadOnlyAdmin):
    paginator = CappedPaginator
    show_full_result_count = False
    list_per_page = 50


class ReadOnlyInline:
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


# -- filters that do not scan the table (no SELECT DISTINCT over millions of jobs) -----------

def known_queues() -> list[str]:
    """Queue names from the task registry, the default, live workers and paused queues."""
    from queues.conf import relay_settings
    from queues.registry import registry

    names = {relay_settings().DEFAULT_QUEUE}
    names |= {t.queue for t in registry if getattr(t, "queue", None)}
    for queues in Worker.objects.filter(state=Worker.State.RUNNING).values_list("queues",
                                                                                 flat=True):
        names |= set(queues or ())
    names |= set(QueuePause.objects.values_list("queue", flat=True))
    return sorted(n for n in names if n)


class QueueFilter(admin.SimpleListFilter):
    title = "queue"
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return [(q, q) for q in known_queues()]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(queue=self.value())
        return queryset


class TaskFilter(admin.SimpleListFilter):
    title = "task"
    parameter_name = "task"

    def lookups(self, request, model_admin):
        from queues.registry import registry

        return [(name, name) for name in registry.names()]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(task=self.value())
        return queryset


class OpenFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return [("yes", "open (waiting for an operator)"), ("no", "resolved")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


# -- jobs ---------------------------------------------------------------------------------------

class ExecutionInline(ReadOnlyInline, admin.TabularInline):
    model = Execution
    fields = ("attempt", "outcome", "worker", "started_at", "finished_at", "error_type",
              "error_message", "late_outcome")
    readonly_fields = fields
    ordering = ("id",)


class DeadLetterInline(ReadOnlyInline, admin.TabularInline):
    model = DeadLetter
    fk_name = "job"
    fields = ("reason", "error_type", "attempts", "created_at", "resolution", "resolved_by",
              "resolved_at", "resolution_note")
    readonly_fields = fields
    ordering = ("-id",)


# The job's own fields, without its JSON (args, kwargs, result, meta, progress, tags).
JOB_FIELDS = ("id", "task", "queue", "state", "priority", "run_at", "created_at", "started_at",
              "finished_at", "attempts", "max_attempts", "timeout", "ack_timeout",
              "lease_token", "leased_until", "worker", "cancel_requested_at", "dedup_key",
              "last_error_type", "last_error_message")


@admin.register(Job)
class JobAdmin(BigTableAdmin):
    list_display = ("id", "task", "queue", "state", "priority", "attempts", "max_attempts",
                    "run_at", "finished_at", "worker", "last_error_type")
    list_filter = ("state", QueueFilter, TaskFilter)
    search_fields = ("=id", "=task", "=dedup_key", "last_error_message")
    list_select_related = ("worker",)
    fields = JOB_FIELDS
    readonly_fields = JOB_FIELDS
    inlines = [ExecutionInline, DeadLetterInline]


EXECUTION_FIELDS = ("id", "job", "attempt", "lease_token", "worker", "outcome", "started_at",
                    "finished_at", "error_type", "error_message", "traceback", "late_outcome",
                    "late_reported_at")


@admin.register(Execution)
class ExecutionAdmin(BigTableAdmin):
    list_display = ("id", "job", "attempt", "outcome", "worker", "started_at", "finished_at",
                    "error_type", "late_outcome")
    list_filter = ("outcome",)
    search_fields = ("=job__id", "=error_type", "error_message")
    list_select_related = ("job", "worker")
    fields = EXECUTION_FIELDS
    readonly_fields = EXECUTION_FIELDS


DEAD_LETTER_FIELDS = ("id", "job", "reason", "error_type", "error_message", "attempts",
                      "created_at", "resolution", "resolved_by", "resolved_at",
                      "resolution_note")


@admin.register(DeadLetter)
class DeadLetterAdmin(BigTableAdmin):
    list_display = ("id", "job", "reason", "error_type", "attempts", "created_at", "resolution",
                    "resolved_by", "resolved_at")
    list_filter = (OpenFilter, "reason", "resolution")
    search_fields = ("=job__id", "=error_type", "error_message")
    list_select_related = ("job", "resolved_by")
    fields = DEAD_LETTER_FIELDS
    readonly_fields = DEAD_LETTER_FIELDS


# -- workers and queues -------------------------------------------------------------------------

@admin.register(Worker)
class WorkerAdmin(ReadOnlyAdmin):
    list_display = ("name", "host", "pid", "state", "queue_names", "concurrency", "started_at",
                    "last_heartbeat_at", "stopped_at")
    list_filter = ("state",)
    search_fields = ("name", "host")
    fields = ("name", "host", "pid", "state", "queue_names", "concurrency", "started_at",
              "last_heartbeat_at", "stopped_at", "task_names")
    readonly_fields = fields
    paginator = CappedPaginator
    show_full_result_count = False

    @admin.display(description="queues")
    def queue_names(self, worker: Worker) -> str:
        return ", ".join(worker.queues or [])

    @admin.display(description="tasks")
    def task_names(self, worker: Worker) -> str:
        return ", ".join(worker.tasks or [])


@admin.register(QueuePause)
class QueuePauseAdmin(ReadOnlyAdmin):
    """Paused queues. Pausing and resuming are operator actions (dashboard, API)."""

    list_display = ("queue", "paused_at", "paused_by", "reason")
    search_fields = ("queue", "paused_by", "reason")
    fields = list_display
    readonly_fields = list_display
