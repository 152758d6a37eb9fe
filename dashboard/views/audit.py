"""The audit log: every operator action, newest first. Read-only: nothing here changes it.

Filters live in the URL: actor, action, object type + object id, text in the reason, since /
until. Pages are keyset (`?after=<id>`), so the log can grow without a COUNT.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_safe

from dashboard.access import Access, access_for
from dashboard.filters import FilterError, parse_time
from dashboard.models import AuditEntry
from dashboard.views.base import PAGE_SIZE, page, render_page

# Every action dashboard.actions records (the filter also accepts any other name).
KNOWN_ACTIONS = (
    "job.cancel", "job.retry", "job.edit_retry", "job.discard", "job.rerun",
    "job.bulk_retry", "job.bulk_discard", "job.bulk_cancel", "failure_group.retry",
    "task.enqueue", "queue.pause", "queue.resume", "run.cancel", "run.rerun",
    "workflow.start", "schedule.pause", "schedule.resume", "schedule.trigger",
)
OBJECT_TYPES = ("job", "workflow_run", "schedule", "queue", "bulk_operation")
SOURCES = ("dashboard", "admin", "api")
MAX_LINKS = 20  # object links shown per entry; the rest are counted


@dataclass
class AuditFilter:
    actor: str = ""
    action: str = ""
    object_type: str = ""
    object_id: str = ""
    reason: str = ""
    source: str = ""
    raw_since: str = ""
    raw_until: str = ""
    since: Any = None
    until: Any = None

    @classmethod
    def from_params(cls, params: Any) -> AuditFilter:
        def one(name: str, limit: int = 200) -> str:
            return str(params.get(name, "")).strip()[:limit]

        f = cls(actor=one("actor", 150), action=one("action", 50),
                object_type=one("object_type", 30), object_id=one("object_id").lstrip("#"),
                reason=one("reason"), source=one("source", 20))
        f.raw_since, f.raw_until = one("since", 40), one("until", 40)
        if f.raw_since:
            f.since = parse_time("since", f.raw_since)
        if f.raw_until:
            f.until = parse_time("until", f.raw_until)
        if f.since and f.until and f.since > f.until:
            raise FilterError("until", "is before since")
        return f

    @property
    def is_empty(self) -> bool:
        return not (self.actor or self.action or self.object_type or self.object_id
                    or self.reason or self.source or self.since or self.until)

    def apply(self, qs: QuerySet) -> QuerySet:
        if self.actor:
            qs = qs.filter(actor__iexact=self.actor)
        if self.action:
            qs = qs.filter(action=self.action)
        if self.object_type:
            qs = qs.filter(object_type=self.object_type)
        if self.object_id:
            # object_ids is a JSON list of strings: as text it holds "42" (quoted) exactly
            # when 42 is one of them.
            qs = qs.filter(object_ids__icontains=json.dumps(self.object_id))
        if self.reason:
            qs = qs.filter(reason__icontains=self.reason)
        if self.source:
            qs = qs.filter(source=self.source)
        if self.since:
            qs = qs.filter(at__gte=self.since)
        if self.until:
            qs = qs.filter(at__lte=self.until)
        return qs


def visible(access: Access, qs: QuerySet) -> QuerySet:
    """Entries a user scoped to some queues and workflows (others hidden) may see: their
    own, and those naming one of their queues or workflows."""
    if access.sees_everything:
        return qs
    _, queues, workflows = access.visible_scope
    mine = Q(actor_id=getattr(access.user, "pk", None))
    mine |= Q(details__queue__in=list(queues)) | Q(details__workflow__in=list(workflows))
    for queue in queues:
        mine |= Q(object_type="queue", object_ids__icontains=json.dumps(queue))
    return qs.filter(mine)


@require_safe
@page
def audit_log(request: HttpRequest) -> HttpResponse:
    access = access_for(request)
    error = None
    try:
        audit_filter = AuditFilter.from_params(request.GET)
    except FilterError as exc:
        error, audit_filter = exc, AuditFilter()
    qs = visible(access, audit_filter.apply(AuditEntry.objects.all()))
    after = request.GET.get("after", "")
    if after.isdigit():
        qs = qs.filter(id__lt=int(after))
    entries = list(qs.order_by("-id")[:PAGE_SIZE + 1])
    more = len(entries) > PAGE_SIZE
    entries = entries[:PAGE_SIZE]
    for entry in entries:
        entry.links = _links(entry)
        entry.more_objects = len(entry.object_ids or []) - len(entry.links)
    actions = list(KNOWN_ACTIONS)
    if audit_filter.action and audit_filter.action not in actions:
        actions.append(audit_filter.action)
    return render_page(request, "dashboard/audit.html", {
        "entries": entries, "filter": audit_filter, "error": error,
        "next_after": entries[-1].pk if more and entries else None,
        "paged": after.isdigit(), "actions": actions, "object_types": OBJECT_TYPES,
        "sources": SOURCES,
    })


def _links(entry: AuditEntry) -> list[tuple[str, str | None]]:
    """(label, url or None) for the first objects of an entry."""
    out = []
    for raw in (entry.object_ids or [])[:MAX_LINKS]:
        value = str(raw)
        url = None
        if entry.object_type == "job" and value.isdigit():
            url = reverse("dashboard:job", args=[int(value)])
            value = f"#{value}"
        elif entry.object_type == "workflow_run" and value.isdigit():
            url = reverse("dashboard:run", args=[int(value)])
            value = f"run #{value}"
        elif entry.object_type == "schedule":
            url = reverse("dashboard:schedules")
            name = (entry.details or {}).get("name")
            value = f"schedule {name}" if name else f"schedule #{value}"
        elif entry.object_type == "queue":
            url = reverse("dashboard:queues")
            value = f"queue {value}"
        elif entry.object_type == "bulk_operation" and value.isdigit():
            url = reverse("dashboard:bulk-operation", args=[int(value)])
            value = f"bulk #{value}"
        out.append((value, url))
    return out
