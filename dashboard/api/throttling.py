"""Requests per user (token or session) and minute, from
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["user"] (RELAY_API_USER_RATE). The rate is read when
a request comes in, not at import, so a changed setting applies at once (tests rely on it).

Throttles run after the permission check: anonymous calls are refused with 401 first and
need no rate of their own."""

from __future__ import annotations

from rest_framework import throttling
from rest_framework.settings import api_settings


class UserRateThrottle(throttling.UserRateThrottle):
    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
