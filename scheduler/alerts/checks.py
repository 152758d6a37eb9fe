"""`manage.py check` refuses channels in RELAY["ALERT_CHANNELS"] that could never deliver."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured


def alert_channels(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from scheduler.alerts.channels import from_settings

    try:
        from_settings()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="relay.E101")]
    return []
