"""Sending one delivery: a JSON POST (webhook), a Slack-compatible message, or an email.

Each raises `SendError` with a short reason when the receiver did not accept the alert; the
outbox records it and retries. HTTP calls use the standard library with a timeout per socket
operation (RELAY["ALERT_HTTP_TIMEOUT"]) and honour the usual proxy environment variables.
"""

from __future__ import annotations

import json
import smtplib
import urllib.error
import urllib.request
from typing import Any

from django.core.mail import send_mail

from queues.conf import relay_settings
from scheduler.alerts.channels import Channel

USER_AGENT = "Relay-Alerts/1"
RESPONSE_CHARS = 300  # of a refusing receiver's answer, kept in last_error


class SendError(Exception):
    """The receiver did not take the alert (the reason is the message)."""


def send(channel: Channel, payload: dict[str, Any], delivery_id: int) -> None:
    if channel.kind == "email":
        _email(channel, payload)
        return
    body = slack_message(payload) if channel.kind == "slack" else payload
    headers = {"X-Relay-Delivery": str(delivery_id), "X-Relay-Event": payload.get("event", "")}
    post_json(channel.url, body, headers)


def post_json(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> int:
    data = json.dumps(body, default=str, ensure_ascii=False).encode()
    request = urllib.request.Request(
        url, data=data, method="POST",
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT,
                 **(headers or {})})
    timeout = relay_settings().ALERT_HTTP_TIMEOUT
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(RESPONSE_CHARS)
            return response.status
    except urllib.error.HTTPError as exc:
        answer = exc.read(RESPONSE_CHARS).decode(errors="replace").strip()
        raise SendError(f"HTTP {exc.code} {exc.reason}" + (f": {answer}" if answer else "")
                        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SendError(f"could not reach the receiver: {reason}") from None


def _mrkdwn(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(payload: dict[str, Any]) -> dict[str, Any]:
    """Slack's incoming-webhook format ({"text", "blocks"}); Mattermost and Rocket.Chat read
    the "text"."""
    icon = {"resolved": ":white_check_mark:"}.get(payload.get("status", ""), ":rotating_light:")
    title = _mrkdwn(payload.get("title", "Relay alert"))
    link = payload.get("link") or ""
    footer = f"{payload.get('event', '')} · {payload.get('at', '')}"
    if link.startswith(("http://", "https://")):
        footer = f"<{link}|Open in Relay> · {footer}"
    return {
        "text": f"{icon} {title}",
        "blocks": [
            {"type": "section",
             "text": {"type": "mrkdwn",
                      "text": f"{icon} *{title}*\n{_mrkdwn(payload.get('text', ''))}"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]},
        ],
    }


def email_message(payload: dict[str, Any]) -> tuple[str, str]:
    """(subject, body) of an alert email."""
    subject = " ".join(f"[Relay] {payload.get('title', 'alert')}".split())[:200]
    details = {k: v for k, v in payload.items() if k not in ("title", "text", "link")}
    body = payload.get("text", "")
    if payload.get("link"):
        body += f"\n\n{payload['link']}"
    body += "\n\n" + json.dumps(details, indent=2, sort_keys=True, default=str,
                                ensure_ascii=False)
    return subject, body


def _email(channel: Channel, payload: dict[str, Any]) -> None:
    subject, body = email_message(payload)
    try:
        send_mail(subject, body, None, list(channel.recipients), fail_silently=False)
    except (smtplib.SMTPException, OSError) as exc:
        raise SendError(f"could not send the email: {exc}") from None
