"""The control plane in the Django admin.

- The audit log, bulk operations and paused queues: read-only for everyone, superusers too.
- Role scopes: editable with `dashboard.change_rolescope`, also inline on each group.
- The queue and scheduler admins (`queues.admin`, `scheduler.admin`) are extended here, so
  those apps never import the dashboard: argument, result, input and output JSON is shown
  only through `dashboard.masking.mask`, and the operator actions (cancel, retry, rerun,
  discard; pause, resume, trigger) call `dashboard.actions` with source "admin". They check
  the same permissions (and scopes) as the dashboard and write the same audit entries: one
  entry per object acted on, exactly as if each had been clicked in the dashboard.
- API tokens: created here (the raw token is shown once), expired and revoked; each of these
  is written to the audit log.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from dashboard import actions
from dashboard.access import access_for
from dashboard.masking import MASK, is_secret_key, mask, mask_filter, unmask
from dashboard.models import ApiToken, AuditEntry, BulkOperation, RoleScope
from queues import admin as queues_admin
from queues.admin import CappedPaginator, ReadOnlyAdmin
from queues.models import DeadLetter, Execution, Job, QueuePause
from scheduler import admin as scheduler_admin
from scheduler.models import Schedule, StepRun, WorkflowDefinition, WorkflowRun

# -- shared -------------------------------------------------------------------------------------


def masked_json(value: Any) -> str:
    """Pretty JSON with secret-keyed values masked, escaped, in a <pre>."""
    if value is None:
        return "—"
    text = json.dumps(mask(value), indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return format_html('<pre class="relay-json">{}</pre>', text)


def short_json(value: Any, limit: int = 80) -> str:
    """One line of masked JSON for list columns."""
    if value in (None, [], {}):
        return ""
    text = json.dumps(mask(value), sort_keys=True, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class OperatorPermissions:
    """`has_<action>_permission` for `@admin.action(permissions=[...])`: shown when any of
    the user's roles allows the action somewhere; each object is checked again (scopes) by
    dashboard.actions when the action runs."""

    def _can(self, request: HttpRequest, action_name: str) -> bool:
        return access_for(request).can_any(action_name)

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return self._can(request, "cancel")

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return self._can(request, "retry")

    def has_rerun_permission(self, request: HttpRequest) -> bool:
        return self._can(request, "rerun")

    def has_discard_permission(self, request: HttpRequest) -> bool:
        return self._can(request, "discard")

    def has_pause_permission(self, request: HttpRequest) -> bool:
        return self._can(request, "pause")

    def has_trigger_permission(self, request: HttpRequest) -> bool:
        return self._can(request, "trigger")


class Scoped:
    """Narrows the admin's lists and pages to what the user's Relay roles let them see: a
    role scoped to some queues and workflows with other work hidden hides it here too.
    Users without a Relay role see what their Django model permissions allow."""

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request)
        access = access_for(request)
        if not access.can_view or access.sees_everything:
            return qs
        return self.scope(access, qs)

    def scope(self, access: Any, qs: QuerySet) -> QuerySet:
        return qs.none()


def _visible_jobs(access: Any) -> QuerySet:
    return access.jobs(Job.objects.all()).values("id")


def act(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet,
        function: Callable[..., Any], verb: str, *,
        key: Callable[[Any], Any] = lambda obj: obj.pk,
        label: Callable[[Any], str] = str) -> None:
    """Run a dashboard action on each selected object, as the admin user, from the admin."""
    from queues.conf import relay_settings

    limit = relay_settings().BULK_INLINE_LIMIT
    objects = list(queryset.order_by("pk")[: limit + 1])
    if len(objects) > limit:
        modeladmin.message_user(
            request, f"Select at most {limit} at a time here; for more, use the dashboard's "
                     f"bulk actions (they run in the background at a bounded rate).",
            messages.ERROR)
        return
    actor = actions.actor_from_request(request, source="admin")
    done = 0
    for obj in objects:
        try:
            function(actor, key(obj))
            done += 1
        except PermissionDenied as exc:
            modeladmin.message_user(request, f"{label(obj)}: {exc}", messages.ERROR)
        except actions.ActionError as exc:
            modeladmin.message_user(request, f"{label(obj)}: {exc}", messages.WARNING)
    if done:
        modeladmin.message_user(request, f"{verb} {done} of {len(objects)}.", messages.SUCCESS)


def dashboard_link(url: str, text: str = "open in the dashboard") -> str:
    return format_html('<a href="{}">{}</a>', url, text)


# -- jobs ---------------------------------------------------------------------------------------


@admin.action(description="Cancel selected jobs", permissions=["cancel"])
def cancel_jobs(modeladmin, request, queryset):
    act(modeladmin, request, queryset, actions.cancel_job, "Cancelled")


@admin.action(description="Retry selected jobs (failed, dead-lettered or cancelled)",
              permissions=["retry"])
def retry_jobs(modeladmin, request, queryset):
    act(modeladmin, request, queryset, actions.retry_job, "Retried")


@admin.action(description="Rerun selected finished jobs as new jobs", permissions=["rerun"])
def rerun_jobs(modeladmin, request, queryset):
    act(modeladmin, request, queryset, actions.rerun_job, "Reran")


@admin.action(description="Discard selected dead letters", permissions=["discard"])
def discard_jobs(modeladmin, request, queryset):
    act(modeladmin, request, queryset, actions.discard_job, "Discarded")


class MaskedExecutionInline(queues_admin.ExecutionInline):
    fields = (*queues_admin.ExecutionInline.fields, "output_masked")
    readonly_fields = fields

    @admin.display(description="output")
    def output_masked(self, execution: Execution) -> str:
        return short_json(execution.output)


admin.site.unregister(Job)


@admin.register(Job)
class JobAdmin(Scoped, OperatorPermissions, queues_admin.JobAdmin):
    def scope(self, access, qs):
        return access.jobs(qs)

    fields = None
    fieldsets = [
        (None, {"fields": (*queues_admin.JOB_FIELDS, "dashboard")}),
        ("Input and output (secret-looking keys masked)",
         {"fields": ("arguments", "result_masked", "tags_list", "meta_masked",
                     "progress_masked")}),
    ]
    readonly_fields = (*queues_admin.JOB_FIELDS, "dashboard", "arguments", "result_masked",
                       "tags_list", "meta_masked", "progress_masked")
    inlines = [MaskedExecutionInline, queues_admin.DeadLetterInline]
    actions = [cancel_jobs, retry_jobs, rerun_jobs, discard_jobs]

    @admin.display(description="dashboard")
    def dashboard(self, job: Job) -> str:
        return dashboard_link(reverse("dashboard:job", args=[job.pk]))

    @admin.display(description="arguments")
    def arguments(self, job: Job) -> str:
        return masked_json({"args": job.args, "kwargs": job.kwargs})

    @admin.display(description="result")
    def result_masked(self, job: Job) -> str:
        return masked_json(job.result)

    @admin.display(description="tags")
    def tags_list(self, job: Job) -> str:
        return ", ".join(str(t) for t in job.tags or [])

    @admin.display(description="meta")
    def meta_masked(self, job: Job) -> str:
        return masked_json(job.meta)

    @admin.display(description="progress")
    def progress_masked(self, job: Job) -> str:
        return masked_json(job.progress)


admin.site.unregister(Execution)


@admin.register(Execution)
class ExecutionAdmin(Scoped, queues_admin.ExecutionAdmin):
    def scope(self, access, qs):
        return qs.filter(job__in=_visible_jobs(access))

    fields = (*queues_admin.EXECUTION_FIELDS, "output_masked")
    readonly_fields = fields

    @admin.display(description="output")
    def output_masked(self, execution: Execution) -> str:
        return masked_json(execution.output)


@admin.action(description="Retry the jobs of selected dead letters", permissions=["retry"])
def retry_dead_letters(modeladmin, request, queryset):
    act(modeladmin, request, queryset, actions.retry_job, "Retried",
        key=lambda letter: letter.job_id, label=lambda letter: f"job #{letter.job_id}")


@admin.action(description="Discard selected dead letters", permissions=["discard"])
def discard_dead_letters(modeladmin, request, queryset):
    act(modeladmin, request, queryset, actions.discard_job, "Discarded",
        key=lambda letter: letter.job_id, label=lambda letter: f"job #{letter.job_id}")


admin.site.unregister(DeadLetter)


@admin.register(DeadLetter)
class DeadLetterAdmin(Scoped, OperatorPermissions, queues_admin.DeadLetterAdmin):
    def scope(self, access, qs):
        return qs.filter(job__in=_visible_jobs(access))

    actions = [retry_dead_letters, discard_dead_letters]


@admin.action(description="Resume selected queues", permissions=["pause"])
def resume_queues(modeladmin, request, queryset):
    act(modeladmin, request, queryset, actions.resume_queue, "Resumed",
        key=lambda pause: pause.queue, label=lambda pause: f"queue {pause.queue}")


admin.site.unregister(QueuePause)


@admin.register(QueuePause)
class QueuePauseAdmin(Scoped, OperatorPermissions, queues_admin.QueuePauseAdmin):
    def scope(self, access, qs):
        return qs.filter(queue__in=access.queues(list(qs.values_list("queue", flat=True))))

    actions = [resume_queues]


# -- workflows ----------------------------------------------------------------------------------


@admin.action(description="Cancel selected runs", permissions=["cancel"])
def cancel_runs(modeladmin, request, queryset):
    act(modeladmin, request, queryset.select_related("definition"), actions.cancel_run,
        "Cancelled", label=lambda run: f"run #{run.pk}")


@admin.action(description="Rerun selected runs from their failed steps", permissions=["rerun"])
def rerun_runs(modeladmin, request, queryset):
    act(modeladmin, request, queryset.select_related("definition"), actions.rerun_run, "Reran",
        label=lambda run: f"run #{run.pk}")


class MaskedStepRunInline(scheduler_admin.StepRunInline):
    fields = (*scheduler_admin.StepRunInline.fields, "input_masked", "output_masked")
    readonly_fields = fields

    @admin.display(description="input")
    def input_masked(self, step: StepRun) -> str:
        return short_json(step.input)

    @admin.display(description="output")
    def output_masked(self, step: StepRun) -> str:
        return short_json(step.output)


admin.site.unregister(WorkflowRun)


@admin.register(WorkflowRun)
class WorkflowRunAdmin(Scoped, OperatorPermissions, scheduler_admin.WorkflowRunAdmin):
    def scope(self, access, qs):
        return access.runs(qs)

    fields = (*scheduler_admin.RUN_FIELDS, "dashboard", "input_masked")
    readonly_fields = fields
    inlines = [MaskedStepRunInline]
    actions = [cancel_runs, rerun_runs]

    @admin.display(description="dashboard")
    def dashboard(self, run: WorkflowRun) -> str:
        return dashboard_link(reverse("dashboard:run", args=[run.pk]))

    @admin.display(description="input")
    def input_masked(self, run: WorkflowRun) -> str:
        return masked_json(run.input)


admin.site.unregister(StepRun)


@admin.register(StepRun)
class StepRunAdmin(Scoped, scheduler_admin.StepRunAdmin):
    def scope(self, access, qs):
        return qs.filter(run__in=access.runs(WorkflowRun.objects.all()).values("id"))

    fields = (*scheduler_admin.STEP_FIELDS, "input_masked", "output_masked")
    readonly_fields = fields

    @admin.display(description="input")
    def input_masked(self, step: StepRun) -> str:
        return masked_json(step.input)

    @admin.display(description="output")
    def output_masked(self, step: StepRun) -> str:
        return masked_json(step.output)


admin.site.unregister(WorkflowDefinition)


@admin.register(WorkflowDefinition)
class WorkflowDefinitionAdmin(Scoped, scheduler_admin.WorkflowDefinitionAdmin):
    def scope(self, access, qs):
        return access.definitions(qs)

    fields = (*scheduler_admin.WorkflowDefinitionAdmin.fields, "spec_masked")
    readonly_fields = fields

    @admin.display(description="spec")
    def spec_masked(self, definition: WorkflowDefinition) -> str:
        return masked_json(definition.spec)


# -- schedules ----------------------------------------------------------------------------------


@admin.action(description="Pause selected schedules", permissions=["pause"])
def pause(modeladmin, request, queryset):
    act(modeladmin, request, queryset, actions.pause_schedule, "Paused")


@admin.action(description="Resume selected schedules (from now; missed times are not run)",
              permissions=["pause"])
def resume(modeladmin, request, queryset):
    act(modeladmin, request, queryset, actions.resume_schedule, "Resumed")


@admin.action(description="Trigger selected schedules now", permissions=["trigger"])
def trigger(modeladmin, request, queryset):
    act(modeladmin, request, queryset, actions.trigger_schedule, "Triggered")


def _masks_left(value: Any) -> bool:
    if isinstance(value, dict):
        return any((isinstance(k, str) and is_secret_key(k) and v == MASK) or _masks_left(v)
                   for k, v in value.items())
    if isinstance(value, list):
        return any(_masks_left(v) for v in value)
    return False


class MaskedJSONField(forms.JSONField):
    """Shows JSON with secret-keyed values masked; the form puts the stored values back
    wherever the mask was left unchanged."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return super().prepare_value(mask(value))


class AdminScheduleForm(scheduler_admin.ScheduleForm):
    input = MaskedJSONField(
        required=False, help_text="Workflow input, or the task's keyword arguments. Values "
        f"of secret-looking keys show as {MASK}; leave them so to keep the stored value.")

    def clean_input(self) -> Any:
        value = self.cleaned_data.get("input")
        if value is None:
            value = {}
        if self.instance.pk:
            value = unmask(value, self.instance.input)
        if _masks_left(value):
            raise ValidationError(f"Type the secret values again: {MASK} stands for a value "
                                  f"this schedule does not have yet.")
        return value


admin.site.unregister(Schedule)


@admin.register(Schedule)
class ScheduleAdmin(Scoped, OperatorPermissions, scheduler_admin.ScheduleAdmin):
    def scope(self, access, qs):
        return access.schedules(qs)

    form = AdminScheduleForm
    actions = [pause, resume, trigger]


# -- the control plane's own rows ---------------------------------------------------------------

KNOWN_SOURCES = ("dashboard", "admin", "api")


class AuditActionFilter(admin.SimpleListFilter):
    """Known action names (no SELECT DISTINCT over the whole log)."""

    title = "action"
    parameter_name = "action"

    def lookups(self, request, model_admin):
        from dashboard.views.audit import KNOWN_ACTIONS

        return [(a, a) for a in KNOWN_ACTIONS]

    def queryset(self, request, queryset):
        return queryset.filter(action=self.value()) if self.value() else queryset


class AuditSourceFilter(admin.SimpleListFilter):
    title = "source"
    parameter_name = "source"

    def lookups(self, request, model_admin):
        return [(s, s) for s in KNOWN_SOURCES]

    def queryset(self, request, queryset):
        return queryset.filter(source=self.value()) if self.value() else queryset


class AuditObjectTypeFilter(admin.SimpleListFilter):
    title = "object type"
    parameter_name = "object_type"

    def lookups(self, request, model_admin):
        from dashboard.views.audit import OBJECT_TYPES

        return [(t, t) for t in OBJECT_TYPES]

    def queryset(self, request, queryset):
        return queryset.filter(object_type=self.value()) if self.value() else queryset


@admin.register(AuditEntry)
class AuditEntryAdmin(Scoped, ReadOnlyAdmin):
    """Append-only: no one adds, changes or deletes entries here, superusers included."""

    list_display = ("at", "actor", "action", "object_type", "objects", "count", "source", "ip",
                    "reason")
    list_filter = (AuditActionFilter, AuditSourceFilter, AuditObjectTypeFilter)
    search_fields = ("actor", "reason", "=action", "object_ids")
    paginator = CappedPaginator
    show_full_result_count = False
    fields = ("at", "actor", "actor_id", "action", "object_type", "objects", "count", "reason",
              "ip", "source", "details_masked")
    readonly_fields = fields

    def scope(self, access, qs):
        from dashboard.views.audit import visible

        return visible(access, qs)

    @admin.display(description="objects")
    def objects(self, entry: AuditEntry) -> str:
        ids = [str(i) for i in entry.object_ids or []]
        text = ", ".join(ids[:20])
        return text + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")

    @admin.display(description="details")
    def details_masked(self, entry: AuditEntry) -> str:
        return masked_json(entry.details)


@admin.register(BulkOperation)
class BulkOperationAdmin(Scoped, ReadOnlyAdmin):
    def scope(self, access, qs):
        return qs.filter(created_by=access.user)

    list_display = ("id", "action", "state", "expected", "done", "skipped", "created_by",
                    "created_at", "finished_at")
    list_filter = ("state", "action")
    list_select_related = ("created_by",)
    fields = ("id", "action", "state", "filter_masked", "max_job_id", "reason", "created_by",
              "created_at", "expected", "done", "skipped", "cursor", "finished_at", "error")
    readonly_fields = fields

    @admin.display(description="filter")
    def filter_masked(self, operation: BulkOperation) -> str:
        return masked_json(mask_filter(operation.filter))


class NamesField(forms.CharField):
    """A JSON list of names, edited as comma-separated text."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return value

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, list):
            return value
        text = super().to_python(value) or ""
        return [name.strip() for name in text.replace("\n", ",").split(",") if name.strip()]


class RoleScopeForm(forms.ModelForm):
    queues = NamesField(required=False, help_text="Queue names, comma-separated.")
    workflows = NamesField(required=False, help_text="Workflow names, comma-separated.")

    class Meta:
        model = RoleScope
        fields = ("group", "queues", "workflows", "others")


class RoleScopeInline(admin.StackedInline):
    model = RoleScope
    form = RoleScopeForm
    fields = ("queues", "workflows", "others")
    max_num = 1
    extra = 0
    verbose_name = "Relay scope (limits this group's role to some queues and workflows)"
    verbose_name_plural = verbose_name


@admin.register(RoleScope)
class RoleScopeAdmin(admin.ModelAdmin):
    form = RoleScopeForm
    list_display = ("group", "queue_names", "workflow_names", "others")
    list_filter = ("others",)
    search_fields = ("group__name",)
    list_select_related = ("group",)

    @admin.display(description="queues")
    def queue_names(self, scope: RoleScope) -> str:
        return ", ".join(scope.queues or [])

    @admin.display(description="workflows")
    def workflow_names(self, scope: RoleScope) -> str:
        return ", ".join(scope.workflows or [])


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(DjangoGroupAdmin):
    inlines = [*DjangoGroupAdmin.inlines, RoleScopeInline]


# -- API tokens ---------------------------------------------------------------------------------

class ApiTokenAddForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ("user", "name", "expires_at")

    def clean_expires_at(self) -> Any:
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise ValidationError("Choose a time in the future (or leave it empty).")
        return expires_at


class ApiTokenChangeForm(forms.ModelForm):
    revoke = forms.BooleanField(required=False, help_text="Refuse this token from now on "
                                                          "(cannot be undone).")

    class Meta:
        model = ApiToken
        fields = ("name", "expires_at")


@admin.action(description="Revoke selected API tokens", permissions=["change"])
def revoke_tokens(modeladmin, request, queryset):
    actor = actions.actor_from_request(request, source="admin")
    revoked = [token for token in queryset.filter(revoked_at__isnull=True) if token.revoke()]
    for token in revoked:
        actions.record(actor, "api_token.revoke", "api_token", [token.pk],
                       details={"name": token.name, "user": token.user.get_username(),
                                "key_id": token.key_id})
    modeladmin.message_user(request, f"Revoked {len(revoked)} API token(s).", messages.SUCCESS)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens for the REST API. The raw token is shown once, on the page after "Save", and
    never stored (only its hash). Superusers manage everyone's tokens; other staff with the
    API token permissions manage only their own."""

    list_display = ("name", "user", "token_prefix", "state", "created_at", "expires_at",
                    "last_used_at")
    list_select_related = ("user",)
    search_fields = ("name", "user__username", "key_id")
    actions = [revoke_tokens]
    readonly_fields = ("user", "token_prefix", "state", "created_at", "last_used_at",
                       "revoked_at")

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        kwargs["form"] = ApiTokenAddForm if obj is None else ApiTokenChangeForm
        form = super().get_form(request, obj, **kwargs)
        if obj is None and not request.user.is_superuser:
            # A token acts as its user: nobody but a superuser makes one for someone else.
            field = form.base_fields["user"]
            field.queryset = field.queryset.filter(pk=request.user.pk)
            field.initial = request.user.pk
        return form

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ("user", "name", "expires_at")
        return ("user", "token_prefix", "name", "state", "created_at", "expires_at",
                "last_used_at", "revoked_at", "revoke")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if obj is None else self.readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request)
        return qs if request.user.is_superuser else qs.filter(user=request.user)

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        actor = actions.actor_from_request(request, source="admin")
        if not change:
            request._relay_raw_token = obj.set_secret()  # shown once by response_add
            super().save_model(request, obj, form, change)
            actions.record(actor, "api_token.create", "api_token", [obj.pk], details={
                "name": obj.name, "user": obj.user.get_username(), "key_id": obj.key_id,
                "expires_at": obj.expires_at.isoformat() if obj.expires_at else None})
            return
        super().save_model(request, obj, form, change)
        if "expires_at" in form.changed_data:
            actions.record(actor, "api_token.expiry", "api_token", [obj.pk], details={
                "name": obj.name, "user": obj.user.get_username(),
                "expires_at": obj.expires_at.isoformat() if obj.expires_at else None})
        if form.cleaned_data.get("revoke") and obj.revoke():
            actions.record(actor, "api_token.revoke", "api_token", [obj.pk], details={
                "name": obj.name, "user": obj.user.get_username(), "key_id": obj.key_id})

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue: Any = None):
        """The raw token, this once: rendered into the page, never kept in the session."""
        return TemplateResponse(request, "admin/dashboard/apitoken/created.html", {
            **self.admin_site.each_context(request), "opts": self.opts, "token": obj,
            "raw": request._relay_raw_token, "title": "API token created",
            "example_url": request.build_absolute_uri("/api/v1/jobs/?state=failed"),
        })

    @admin.display(description="token")
    def token_prefix(self, token: ApiToken) -> str:
        return f"{ApiToken.PREFIX}{token.key_id}_…"

    @admin.display(description="state")
    def state(self, token: ApiToken) -> str:
        return token.problem(timezone.now()) or "active"
