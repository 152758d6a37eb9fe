"""Deny by default: the API (schema and docs included) answers only users with a Relay role.
What each action needs is then checked by `dashboard.actions`, per object and scope."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission

from dashboard.access import access_for


class HasRelayRole(BasePermission):
    message = "You have no Relay role (viewer, operator or admin)."

    def has_permission(self, request: Any, view: Any) -> bool:
        # An anonymous caller gets False here, which DRF turns into 401 (not authenticated).
        user = request.user
        return bool(user and user.is_authenticated and access_for(request).can_view)
