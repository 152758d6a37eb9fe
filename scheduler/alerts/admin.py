"""Admin for alerts: channels are edited here; deliveries, throttle state and cursors are
history (read-only), with "retry now" for deliveries and "send a test alert" for channels.

A webhook URL may itself be the credential (Slack's are): users who may only view channels
see its scheme and host, never the whole URL.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from queues.admin import CappedPaginator, ReadOnlyAdmin
from scheduler import clock
from scheduler.alerts import channels, outbox
from scheduler.alerts.events import Alert
from scheduler.alerts.models import AlertChannel, AlertCursor, AlertDelivery, AlertState, Event


class AlertChannelForm(forms.ModelForm):
    url = forms.URLField(max_length=1000, required=False, assume_scheme="https",
                         help_text=AlertChannel._meta.get_field("url").help_text)
    events = forms.MultipleChoiceField(
        choices=Event.choices, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every event.")

    class Meta:
        model = AlertChannel
        fields = ("name", "kind", "url", "recipients", "events", "enabled")

    def clean(self):
        data = super().clean()
        name = data.get("name")
        if name and name in channels.settings_names():
            self.add_error("name", "a channel of this name is declared in "
                                   "RELAY['ALERT_CHANNELS']; choose another name")
        found = channels.problems(data.get("kind") or "", data.get("url") or "",
                                  channels.split_recipients(data.get("recipients") or ""),
                                  list(data.get("events") or []))
        for field, problem in found.items():
            self.add_error(field if field in self.fields else None, problem)
        return data


@admin.action(description="Send a test alert to the selected channels", permissions=["change"])
def send_test(modeladmin, request: HttpRequest, queryset) -> None:
    now = clock.now()
    for row in queryset:
        alert = Alert(event="test", subject=row.name, dedup_key=f"test:{now.isoformat()}",
                      title=f"Test alert from Relay to {row.name}",
                      text=f"{request.user} sent this test from the admin.")
        delivery = AlertDelivery.objects.create(
            event="test", channel=row.name, dedup_key=alert.dedup_key, subject=row.name,
            title=alert.title, payload=alert.payload(now), next_attempt_at=now)
        # Tried once now, in the request (bounded by the HTTP timeout); retried as usual.
        state = outbox.deliver(delivery.pk, force=True)
        delivery.refresh_from_db()
        if state == AlertDelivery.State.DELIVERED:
            modeladmin.message_user(request, f"Test alert to {row.name}: delivered.",
                                    messages.SUCCESS)
        else:
            modeladmin.message_user(
                request, f"Test alert to {row.name}: {delivery.last_error or state}",
                messages.ERROR)


@admin.register(AlertChannel)
class AlertChannelAdmin(admin.ModelAdmin):
    form = AlertChannelForm
    list_display = ("name", "kind", "target", "event_list", "enabled", "updated_at")
    list_filter = ("kind", "enabled")
    search_fields = ("name",)
    actions = [send_test]

    @admin.display(description="sends to")
    def target(self, obj: AlertChannel) -> str:
        return channels.describe(obj)

    @admin.display(description="events")
    def event_list(self, obj: AlertChannel) -> str:
        return ", ".join(obj.events or []) or "all"

    def get_fields(self, request: HttpRequest, obj=None):
        if obj is not None and not self.has_change_permission(request, obj):
            return ("name", "kind", "target", "event_list", "enabled", "created_at",
                    "updated_at")
        return super().get_fields(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        if obj is not None and not self.has_change_permission(request, obj):
            return self.get_fields(request, obj)
        return ()


@admin.action(description="Retry the selected deliveries now", permissions=["retry"])
def retry_now(modeladmin, request: HttpRequest, queryset) -> None:
    count = outbox.retry_now(ids=list(queryset.values_list("id", flat=True)))
    modeladmin.message_user(request, f"{count} deliveries will be tried on the next pass.",
                            messages.SUCCESS)


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "event", "title", "channel", "state", "attempts",
                    "next_attempt_at", "delivered_at", "last_error")
    list_filter = ("state", "event", "channel")
    search_fields = ("title", "subject", "=id")
    paginator = CappedPaginator
    show_full_result_count = False
    fields = ("id", "event", "channel", "subject", "title", "payload", "state", "attempts",
              "next_attempt_at", "last_error", "created_at", "delivered_at", "dedup_key")
    readonly_fields = fields
    actions = [retry_now]

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("scheduler.change_alertchannel")


@admin.register(AlertState)
class AlertStateAdmin(ReadOnlyAdmin):
    list_display = ("kind", "subject", "window_start", "announced", "folded", "firing_since",
                    "last_sent_at")
    list_filter = ("kind",)
    search_fields = ("subject",)
    fields = ("kind", "subject", "window_start", "announced", "folded", "sample",
              "firing_since", "last_sent_at")
    readonly_fields = fields


@admin.register(AlertCursor)
class AlertCursorAdmin(ReadOnlyAdmin):
    list_display = ("name", "position", "checked_at")
    fields = ("name", "position", "checked_at", "gaps", "seen")
    readonly_fields = fields
