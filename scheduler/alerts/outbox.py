"""The alert outbox: detectors write deliveries, senders work through the due ones.

Writing is part of the detector's transaction. Sending happens outside any transaction and
may run in several processes at once (the scheduler's sender thread, `relay_watchdog`): a
sender claims a delivery by moving its `next_attempt_at` ahead in one conditional UPDATE, so
only one of them tries it. Delivery is at least once: a sender that dies after the receiver
accepted an alert but before recording it sends it again after the claim runs out; the
`X-Relay-Delivery` header lets a receiver drop the repeat.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.db.models import F

from queues.conf import relay_settings
from scheduler import clock
from scheduler.alerts import channels, senders
from scheduler.alerts.events import Alert
from scheduler.alerts.models import AlertDelivery

logger = logging.getLogger("scheduler.alerts")

SEND_BATCH = 50  # deliveries looked at per pass
CLAIM_MARGIN = 5.0  # seconds a claim outlives the HTTP timeout (twice) before others retry

State = AlertDelivery.State


def write(alerts: list[Alert], now: datetime) -> int:
    """One delivery per alert and enabled channel that wants it, in the caller's transaction
    (a (channel, key) pair already written is skipped). Returns how many were offered."""
    if not alerts:
        return 0
    targets = channels.active()
    rows = [AlertDelivery(event=alert.event, channel=channel.name, dedup_key=alert.dedup_key,
                          subject=alert.subject[:320], title=alert.title[:500],
                          payload=alert.payload(now), next_attempt_at=now)
            for alert in alerts for channel in targets if channel.wants(alert.event)]
    for alert in alerts:
        logger.warning("alert: %s", alert.title,
                       extra={"action": "alert", "event": alert.event, "subject": alert.subject,
                              "channels": sum(c.wants(alert.event) for c in targets)})
    AlertDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def deliver_due(*, limit: int = SEND_BATCH, budget: float | None = None) -> int:
    """Try every due delivery (up to `limit`, and for about `budget` seconds). Returns how
    many were delivered."""
    started = time.monotonic()
    due = list(AlertDelivery.objects.filter(state=State.PENDING,
                                            next_attempt_at__lte=clock.now())
               .order_by("next_attempt_at", "id").values_list("id", flat=True)[:limit])
    delivered = 0
    for delivery_id in due:
        if budget is not None and time.monotonic() - started > budget:
            break
        delivered += deliver(delivery_id) == State.DELIVERED
    return delivered


def deliver(delivery_id: int, *, force: bool = False) -> str | None:
    """Claim and try one delivery. Returns its new state, or None if it was not due (or another
    sender holds it). `force` tries it even before its next attempt is due."""
    conf = relay_settings()
    now = clock.now()
    hold = timedelta(seconds=2 * conf.ALERT_HTTP_TIMEOUT + CLAIM_MARGIN)
    claim = AlertDelivery.objects.filter(pk=delivery_id, state=State.PENDING)
    if not force:
        claim = claim.filter(next_attempt_at__lte=now)
    if not claim.update(next_attempt_at=now + hold, attempts=F("attempts") + 1):
        return None
    delivery = AlertDelivery.objects.get(pk=delivery_id)
    extra = {"action": "alert_delivery", "delivery_id": delivery.pk, "channel": delivery.channel,
             "event": delivery.event, "attempt": delivery.attempts}
    channel = channels.named(delivery.channel)
    if channel is None:
        _record(delivery, State.DROPPED, error="the channel was removed or disabled")
        logger.warning("alert %s dropped: channel %s is gone", delivery.pk, delivery.channel,
                       extra=extra)
        return State.DROPPED
    try:
        senders.send(channel, delivery.payload, delivery.pk)
    except senders.SendError as exc:
        return _failed(delivery, str(exc), extra)
    except Exception as exc:  # a sender bug must not stop the other alerts
        logger.exception("alert %s: sender crashed", delivery.pk, extra=extra)
        return _failed(delivery, f"{type(exc).__name__}: {exc}", extra)
    _record(delivery, State.DELIVERED, delivered_at=clock.now())
    logger.info("alert %s delivered to %s", delivery.pk, delivery.channel, extra=extra)
    return State.DELIVERED


def retry_delay(attempts: int) -> float:
    conf = relay_settings()
    return min(conf.ALERT_RETRY_CAP, conf.ALERT_RETRY_BASE * 2 ** max(0, attempts - 1))


def retry_now(deliveries: list[AlertDelivery] | None = None, *, ids: list[int] | None = None
              ) -> int:
    """Make failed or pending deliveries due at once, with a fresh set of attempts."""
    pks = ids if ids is not None else [d.pk for d in deliveries or []]
    return AlertDelivery.objects.filter(pk__in=pks, state__in=[State.PENDING, State.FAILED]
                                        ).update(state=State.PENDING, attempts=0,
                                                 next_attempt_at=clock.now())


def _failed(delivery: AlertDelivery, error: str, extra: dict) -> str:
    conf = relay_settings()
    if delivery.attempts >= conf.ALERT_MAX_ATTEMPTS:
        _record(delivery, State.FAILED, error=error)
        logger.error("alert %s to %s given up after %d attempts: %s", delivery.pk,
                     delivery.channel, delivery.attempts, error, extra=extra)
        return State.FAILED
    delay = retry_delay(delivery.attempts)
    _record(delivery, State.PENDING, error=error,
            next_attempt_at=clock.now() + timedelta(seconds=delay))
    logger.warning("alert %s to %s failed (attempt %d), retrying in %.1fs: %s", delivery.pk,
                   delivery.channel, delivery.attempts, delay, error, extra=extra)
    return State.PENDING


def _record(delivery: AlertDelivery, state: str, *, error: str = "",
            delivered_at: datetime | None = None, next_attempt_at: datetime | None = None
            ) -> None:
    changes = {"state": state, "last_error": error[:2000]}
    if delivered_at is not None:
        changes["delivered_at"] = delivered_at
    if next_attempt_at is not None:
        changes["next_attempt_at"] = next_attempt_at
    # Only while it is still ours: an admin "retry now" in between wins.
    AlertDelivery.objects.filter(pk=delivery.pk, attempts=delivery.attempts,
                                 state=State.PENDING).update(**changes)
