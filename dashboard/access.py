"""Who may see and do what: a user's roles, each possibly scoped to queues and workflows.

`Access(user)` is built once per request. `can(action, queue=..., workflow=...)` answers for
one object; `jobs(qs)`/`runs(qs)`/`schedules(qs)` narrow querysets to what the user may see.
Superusers and unscoped roles see and act on everything their permissions allow.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet

from dashboard.roles import ACTIONS

ALL = ("view_dashboard", *ACTIONS)


@dataclass(frozen=True)
class Grant:
    perms: frozenset[str]
    queues: frozenset[str] | None = None  # None: every queue
    workflows: frozenset[str] | None = None  # None: every workflow
    others_visible: bool = True

    @property
    def scoped(self) -> bool:
        return self.queues is not None or self.workflows is not None

    def covers(self, queue: str | None, workflow: str | None) -> bool:
        if not self.scoped:
            return True
        return bool((queue and queue in (self.queues or ()))
                    or (workflow and workflow in (self.workflows or ())))


class Access:
    def __init__(self, user: Any) -> None:
        self.user = user

    @cached_property
    def grants(self) -> list[Grant]:
        user = self.user
        if not getattr(user, "is_authenticated", False) or not user.is_active:
            return []
        if user.is_superuser:
            return [Grant(frozenset(ALL))]
        from django.contrib.auth.models import Permission

        grants = []
        own = frozenset(Permission.objects.filter(
            user=user, content_type__app_label="dashboard").values_list("codename", flat=True))
        if own:
            grants.append(Grant(own))
        for group in user.groups.prefetch_related("permissions__content_type").select_related(
                "relay_scope"):
            perms = frozenset(p.codename for p in group.permissions.all()
                              if p.content_type.app_label == "dashboard")
            if not perms:
                continue
            scope = getattr(group, "relay_scope", None)
            if scope is None:
                grants.append(Grant(perms))
            else:
                grants.append(Grant(perms, frozenset(scope.queues), frozenset(scope.workflows),
                                    scope.others == "read"))
        return grants

    # -- questions -------------------------------------------------------------------------

    @property
    def can_view(self) -> bool:
        return any("view_dashboard" in g.perms for g in self.grants)

    def can(self, action: str, *, queue: str | None = None, workflow: str | None = None) -> bool:
        """May the user do `action` on an object of this queue / workflow?"""
        return any(action in g.perms and g.covers(queue, workflow) for g in self.grants)

    def can_any(self, action: str) -> bool:
        """Does any role allow `action` somewhere (to show a page's action bar)?"""
        return any(action in g.perms for g in self.grants)

    def require(self, action: str, *, queue: str | None = None,
                workflow: str | None = None) -> None:
        if not self.can(action, queue=queue, workflow=workflow):
            where = " ".join(filter(None, [queue and f"queue {queue}",
                                           workflow and f"workflow {workflow}"]))
            raise PermissionDenied(f"You may not {action}" + (f" on {where}" if where else ""))

    def can_job(self, action: str, job: Any) -> bool:
        return self.can(action, queue=job.queue, workflow=(job.meta or {}).get("workflow"))

    def can_run(self, action: str, run: Any) -> bool:
        return self.can(action, workflow=run.definition.name)

    # -- visibility ------------------------------------------------------------------------

    @cached_property
    def _visible(self) -> tuple[bool, frozenset[str], frozenset[str]]:
        """(sees everything, queues seen, workflows seen)."""
        queues: set[str] = set()
        workflows: set[str] = set()
        for grant in self.grants:
            if "view_dashboard" not in grant.perms:
                continue
            if not grant.scoped or grant.others_visible:
                return True, frozenset(), frozenset()
            queues |= grant.queues or set()
            workflows |= grant.workflows or set()
        return False, frozenset(queues), frozenset(workflows)

    @property
    def visible_scope(self) -> tuple[bool, frozenset[str], frozenset[str]]:
        """(sees everything, queues seen, workflows seen) -- for queries that narrow
        visibility themselves (e.g. aggregates over executions)."""
        return self._visible

    @property
    def sees_everything(self) -> bool:
        return self._visible[0]

    def may_see(self, *, queue: str | None = None, workflow: str | None = None) -> bool:
        everything, queues, workflows = self._visible
        if not self.can_view:
            return False
        return everything or (queue in queues) or (workflow in workflows)

    def jobs(self, qs: QuerySet) -> QuerySet:
        everything, queues, workflows = self._visible
        if everything:
            return qs
        return qs.filter(Q(queue__in=queues) | Q(meta__workflow__in=list(workflows)))

    def runs(self, qs: QuerySet) -> QuerySet:
        everything, _, workflows = self._visible
        return qs if everything else qs.filter(definition__name__in=workflows)

    def definitions(self, qs: QuerySet) -> QuerySet:
        everything, _, workflows = self._visible
        return qs if everything else qs.filter(name__in=workflows)

    def schedules(self, qs: QuerySet) -> QuerySet:
        everything, _, workflows = self._visible
        return qs if everything else qs.filter(target_kind="workflow", target__in=workflows)

    def queues(self, names: list[str]) -> list[str]:
        everything, queues, _ = self._visible
        return names if everything else [n for n in names if n in queues]


def access_for(request: Any) -> Access:
    """The request's Access, built once."""
    access = getattr(request, "_relay_access", None)
    if access is None:
        access = request._relay_access = Access(request.user)
    return access


def deny(message: str = "Not permitted") -> None:
    raise PermissionDenied(message)
