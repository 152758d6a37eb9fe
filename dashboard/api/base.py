"""What every API view shares: the caller's Access and Actor, masked serializers, reasons.

Reads go through `Access` querysets, so a scoped role sees exactly what the dashboard shows
it (anything else is a 404, as if it did not exist). Changes go through `dashboard.actions`
with source "api": the same permission checks and the same audit entries as the dashboard.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from rest_framework import viewsets
from rest_framework.exceptions import ValidationError

from dashboard.access import Access, access_for
from dashboard.actions import Actor, actor_from_request
from dashboard.masking import mask
from queues.api.serializers import ReasonSerializer

# Numeric ids in paths: anything else is a 404 before a view runs.
ID = r"[0-9]{1,18}"
MAX_ID = 10**18 - 1


class RelayViewSet(viewsets.GenericViewSet):
    lookup_value_regex = ID

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authentication, role, rate
        for name, values in request.query_params.lists():
            if "\x00" in name or any("\x00" in value for value in values):
                raise ValidationError({name.replace("\x00", ""): [
                    "The NUL character is not allowed."]})

    @property
    def access(self) -> Access:
        return access_for(self.request)

    def actor(self) -> Actor:
        return actor_from_request(self.request, source="api")

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "mask": mask}

    def render(self, serializer_class: Any, instance: Any, **kwargs: Any) -> Any:
        return serializer_class(instance, context=self.get_serializer_context(), **kwargs).data

    def require_any(self, action: str) -> None:
        """Refuse at once (403) a caller none of whose roles allows `action` anywhere."""
        if not self.access.can_any(action):
            raise PermissionDenied(f"You may not {action}")

    def reason(self) -> str:
        """The optional {"reason": "..."} of an action's body (400 if malformed)."""
        serializer = ReasonSerializer(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data.get("reason", "").strip()
