"""Who is calling: a personal API token (`Authorization: Bearer relay_...`) or the dashboard's
login session.

The token class comes first: its `authenticate_header` makes a request without credentials
a 401 (with `WWW-Authenticate: Bearer`) rather than a 403. A token that is unknown, expired
or revoked is a 401 that says which. Session requests are CSRF-checked like the dashboard's
forms.
"""

from __future__ import annotations

import logging
from typing import Any

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from dashboard.models import ApiToken

logger = logging.getLogger("dashboard.api")


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None  # not ours: the session (or nobody) then
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header: use 'Bearer <token>'.")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid API token.") from None
        token = ApiToken.find(raw)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid API token.")
        now = timezone.now()
        problem = token.problem(now)
        if problem:
            logger.info("refused API token %s: %s", token.key_id, problem,
                        extra={"token": token.key_id, "user": token.user_id})
            raise exceptions.AuthenticationFailed(problem + ".")
        token.touch(now)
        return token.user, token

    def authenticate_header(self, request: Any) -> str:
        return f'{self.keyword} realm="api"'


class SessionAuthentication(authentication.SessionAuthentication):
    """The dashboard's login, for the interactive docs and scripts run from a browser.
    Unsafe methods need the CSRF token (DRF enforces it for session-authenticated calls)."""


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """How the schema describes the token: an HTTP bearer scheme."""

    target_class = BearerTokenAuthentication
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "http", "scheme": "bearer",
                "description": "A personal API token from the admin (relay_...)."}


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = SessionAuthentication
    name = "session"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        from django.conf import settings

        return {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME}
