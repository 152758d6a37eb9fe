"""Template helpers: times the browser localises, masked JSON, state badges, query strings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from django import template
from django.utils import timezone
from django.utils.html import format_html

from dashboard.masking import mask

register = template.Library()


@register.simple_tag
def when(value: datetime | None, empty: str = "—") -> str:
    """A <time> element: UTC on the server; relay.js shows it in the user's time zone (or
    UTC, by the toggle) with a relative time ("3 min ago")."""
    if value is None:
        return format_html('<span class="muted">{}</span>', empty)
    utc = value.astimezone(UTC) if timezone.is_aware(value) else value
    return format_html('<time datetime="{}" title="{} UTC">{} UTC</time>',
                       utc.isoformat(), utc.strftime("%Y-%m-%d %H:%M:%S"),
                       utc.strftime("%Y-%m-%d %H:%M:%S"))


@register.filter
def masked_json(value: Any, indent: int = 2) -> str:
    """Pretty JSON with secrets masked; autoescaped by the template like any string."""
    return json.dumps(mask(value), indent=indent or None, sort_keys=True, ensure_ascii=False,
                      default=str)


@register.filter
def masked(value: Any) -> Any:
    return mask(value)


@register.filter
def seconds(value: float | timedelta | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


@register.simple_tag
def badge(state: str) -> str:
    return format_html('<span class="badge state-{}">{}</span>', state, state.replace("_", " "))


@register.simple_tag(takes_context=True)
def query(context: Any, **changes: Any) -> str:
    """The current query string with some parameters replaced (None or "" removes them)."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        params.pop(key, None)
        if value not in (None, ""):
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"


@register.filter
def can(access: Any, action_name: str) -> bool:
    return access.can_any(action_name)


@register.simple_tag
def allowed(access: Any, action_name: str, obj: Any = None) -> bool:
    """`{% allowed access "retry" job as ok %}`: may the user do this to this object (a job,
    a run, a schedule or a queue name)? Without an object: anywhere."""
    if obj is None:
        return access.can_any(action_name)
    if isinstance(obj, str):
        return access.can(action_name, queue=obj)
    model = obj._meta.model_name
    if model == "job":
        return access.can_job(action_name, obj)
    if model == "workflowrun":
        return access.can_run(action_name, obj)
    if model == "schedule":
        from dashboard.actions import _schedule_scope

        return access.can(action_name, **_schedule_scope(obj))
    if model == "workflowdefinition":
        return access.can(action_name, workflow=obj.name)
    raise TypeError(f"allowed: no rule for {model}")
