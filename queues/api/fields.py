"""Fields the API serializers share: JSON shown through the caller's mask, JSON accepted only
when a database can store it."""

from __future__ import annotations

import math
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

ANY_JSON: dict[str, Any] = {}  # the OpenAPI schema of "any JSON value"


class MaskedJSONField(serializers.JSONField):
    """Read-only JSON passed through `context["mask"]` before it is rendered. A serializer
    used without a mask fails loudly instead of showing secrets."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> Any:
        mask = self.context.get("mask")
        if mask is None:
            raise ImproperlyConfigured(f"{type(self.root).__name__} needs context['mask']")
        return mask(value)


@extend_schema_field({"type": "array", "items": ANY_JSON})
class MaskedList(MaskedJSONField):
    def to_representation(self, value: Any) -> Any:
        return super().to_representation(list(value or []))


@extend_schema_field({"type": "object", "additionalProperties": ANY_JSON})
class MaskedObject(MaskedJSONField):
    def to_representation(self, value: Any) -> Any:
        return super().to_representation(dict(value or {}))


@extend_schema_field(ANY_JSON)
class MaskedAny(MaskedJSONField):
    pass


def storable(value: Any, path: str = "") -> str | None:
    """Why `value` cannot be stored as JSON in both databases (PostgreSQL refuses the NUL
    character; neither takes NaN or infinity), or None."""
    if isinstance(value, str):
        return f"{path or 'value'}: the NUL character is not allowed" if "\x00" in value else None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{path or 'value'}: {value} is not a JSON number"
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            problem = storable(key, where) or storable(item, where)
            if problem:
                return problem
    if isinstance(value, list):
        for index, item in enumerate(value):
            problem = storable(item, f"{path}[{index}]" if path else f"[{index}]")
            if problem:
                return problem
    return None


class StorableJSONMixin:
    """Input JSON (a list or an object) that both databases can store."""

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)  # type: ignore[misc]
        problem = storable(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value


@extend_schema_field({"type": "object", "additionalProperties": ANY_JSON})
class JSONObjectField(StorableJSONMixin, serializers.JSONField):
    default_error_messages = {"not_object": "Expected a JSON object, not {kind}."}

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            self.fail("not_object", kind=_kind(data))
        return super().to_internal_value(data)


@extend_schema_field({"type": "array", "items": ANY_JSON})
class JSONListField(StorableJSONMixin, serializers.JSONField):
    default_error_messages = {"not_list": "Expected a JSON list, not {kind}."}

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, list):
            self.fail("not_list", kind=_kind(data))
        return super().to_internal_value(data)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value),
                                                                       type(value).__name__)


class FiniteFloatField(serializers.FloatField):
    """A float that is a real number: "nan" and "inf" are refused, whatever the bounds."""

    default_error_messages = {"not_finite": "A finite number is required."}

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            self.fail("not_finite")
        return value


class AwareDateTimeField(serializers.DateTimeField):
    """A time with its UTC offset: a naive time is ambiguous, so it is refused, not guessed."""

    default_error_messages = {
        "naive": "Give the time with a UTC offset, e.g. 2026-11-24T10:00:00Z.",
    }

    def enforce_timezone(self, value: Any) -> Any:
        from django.utils import timezone

        if timezone.is_naive(value):
            self.fail("naive")
        return super().enforce_timezone(value)
