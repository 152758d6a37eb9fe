"""Leadership among schedulers: one row, held until its lease (database clock) runs out.

Several `relay_scheduler` processes may run for availability; the one holding the lease fires
schedules and sweeps, the others wait. A leader that dies or hangs loses the lease after
`SCHEDULER_LEASE` seconds and the next tick of another scheduler takes over. Leadership only
avoids duplicate work: firing exactly once is guaranteed by the firing's unique key.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, When
from django.db.models.functions import Now

from scheduler.models import SchedulerLease

LEASE = "scheduler"


def acquire(holder: str, seconds: float) -> bool:
    """Take or renew the lease; True when `holder` leads for the next `seconds`."""
    from queues import NowPlus

    _ensure_row()
    updated = (
        SchedulerLease.objects.filter(name=LEASE)
        .filter(Q(holder=holder) | Q(expires_at__isnull=True) | Q(expires_at__lt=Now()))
        .update(
            acquired_at=Case(When(holder=holder, then=F("acquired_at")), default=Now()),
            holder=holder,
            expires_at=NowPlus(seconds),
            last_tick_at=Now(),
        )
    )
    return updated == 1


def release(holder: str) -> None:
    SchedulerLease.objects.filter(name=LEASE, holder=holder).update(expires_at=None)


def current() -> SchedulerLease | None:
    return SchedulerLease.objects.filter(name=LEASE).first()


def _ensure_row() -> None:
    if SchedulerLease.objects.filter(name=LEASE).exists():
        return
    try:
        with transaction.atomic():
            SchedulerLease.objects.create(name=LEASE)
    except IntegrityError:
        pass  # another scheduler created it
