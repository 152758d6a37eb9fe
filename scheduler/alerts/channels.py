"""Where alerts go: channels from the admin (AlertChannel rows) and from
RELAY["ALERT_CHANNELS"], as one list. A name declared in settings wins over a row of the same
name (the admin refuses to create one)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import validate_email

from queues.conf import relay_settings
from scheduler.alerts.models import AlertChannel, Event

KINDS = tuple(AlertChannel.Kind.values)
SETTINGS_KEYS = {"name", "kind", "url", "recipients", "events", "enabled"}


@dataclass(frozen=True)
class Channel:
    name: str
    kind: str
    url: str = ""
    recipients: tuple[str, ...] = ()
    events: tuple[str, ...] = ()  # empty: every event
    source: str = "admin"  # or "settings"

    def wants(self, event: str) -> bool:
        return not self.events or event in self.events


def split_recipients(text: str | list[str] | tuple[str, ...]) -> list[str]:
    if isinstance(text, (list, tuple)):
        return [str(r).strip() for r in text if str(r).strip()]
    return [r.strip() for r in re.split(r"[,\s;]+", text or "") if r.strip()]


def problems(kind: str, url: str, recipients: list[str], events: list[str]) -> dict[str, str]:
    """What is wrong with a channel, by field; empty when it can be used."""
    found: dict[str, str] = {}
    if kind not in KINDS:
        found["kind"] = f"unknown kind {kind!r} (one of {', '.join(KINDS)})"
    elif kind == AlertChannel.Kind.EMAIL:
        if not recipients:
            found["recipients"] = "an email channel needs at least one recipient"
        for address in recipients:
            try:
                validate_email(address)
            except ValidationError:
                found["recipients"] = f"{address!r} is not an email address"
    else:
        parts = urlsplit(url or "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            found["url"] = "a webhook channel needs an http:// or https:// URL"
    unknown = [e for e in events if e not in Event.values]
    if unknown:
        found["events"] = (f"unknown event(s) {', '.join(map(repr, unknown))} (known: "
                           f"{', '.join(Event.values)})")
    return found


def from_settings() -> list[Channel]:
    """RELAY["ALERT_CHANNELS"], validated. Raises ImproperlyConfigured naming the channel."""
    channels = []
    names: set[str] = set()
    for index, spec in enumerate(relay_settings().ALERT_CHANNELS):
        where = f"RELAY['ALERT_CHANNELS'][{index}]"
        if not isinstance(spec, dict):
            raise ImproperlyConfigured(f"{where} must be a dict")
        unknown = sorted(set(spec) - SETTINGS_KEYS)
        if unknown:
            raise ImproperlyConfigured(f"{where}: unknown key(s) {', '.join(unknown)}")
        name = str(spec.get("name") or "").strip()
        if not name:
            raise ImproperlyConfigured(f"{where} needs a name")
        if name in names:
            raise ImproperlyConfigured(f"{where}: the name {name!r} is used twice")
        names.add(name)
        kind = spec.get("kind", AlertChannel.Kind.WEBHOOK)
        recipients = split_recipients(spec.get("recipients") or [])
        events = list(spec.get("events") or [])
        found = problems(kind, spec.get("url", ""), recipients, events)
        if found:
            raise ImproperlyConfigured(
                f"{where} ({name}): " + "; ".join(f"{k}: {v}" for k, v in found.items()))
        if spec.get("enabled", True):
            channels.append(Channel(name=name, kind=kind, url=spec.get("url", ""),
                                    recipients=tuple(recipients), events=tuple(events),
                                    source="settings"))
    return channels


def settings_names() -> set[str]:
    return {str(spec.get("name")) for spec in relay_settings().ALERT_CHANNELS
            if isinstance(spec, dict)}


def _from_row(row: AlertChannel) -> Channel:
    return Channel(name=row.name, kind=row.kind, url=row.url,
                   recipients=tuple(split_recipients(row.recipients)),
                   events=tuple(row.events or ()), source="admin")


def active() -> list[Channel]:
    """Every enabled channel."""
    found = from_settings()
    taken = {c.name for c in found} | settings_names()
    found += [_from_row(row) for row in AlertChannel.objects.filter(enabled=True)
              if row.name not in taken]
    return found


def named(name: str) -> Channel | None:
    """The enabled channel called `name`, or None (removed or disabled since)."""
    for channel in from_settings():
        if channel.name == name:
            return channel
    if name in settings_names():
        return None  # declared in settings, but disabled there
    row = AlertChannel.objects.filter(name=name, enabled=True).first()
    return _from_row(row) if row else None


def describe(channel: Any) -> str:
    """Where a channel sends, without secrets: a webhook URL's scheme and host only (Slack's
    URLs are themselves the credential)."""
    if channel.kind == AlertChannel.Kind.EMAIL:
        recipients = channel.recipients
        if isinstance(recipients, str):
            recipients = split_recipients(recipients)
        return ", ".join(recipients)
    parts = urlsplit(channel.url or "")
    return f"{parts.scheme}://{parts.netloc}/…" if parts.netloc else ""
