"""The API denies by default: every URL pattern under /api/ -- routes added later included --
answers an anonymous caller 401, for GET and for POST, and never serves data or fails."""

from __future__ import annotations

import re

from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

# A value for each kind of path parameter the API uses.
SAMPLES = {"pk": "1", "name": "other-flow"}


def api_urls() -> list[str]:
    """A concrete path for every URL pattern whose route starts with api/."""
    found = []

    def walk(patterns, prefix: str, namespace: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
                walk(pattern.url_patterns, route, inner)
            elif isinstance(pattern, URLPattern) and route.lstrip("^").startswith("api/"):
                assert pattern.name, f"unnamed API route {route}"
                params = re.compile(pattern.pattern.regex.pattern).groupindex
                found.append(reverse(namespace + pattern.name,
                                     kwargs={p: SAMPLES[p] for p in params}))

    walk(get_resolver().url_patterns, "", "")
    return sorted(set(found))


def test_every_api_route_answers_anonymous_callers_401(world):
    paths = api_urls()
    assert "/api/schema/" in paths and "/api/docs/" in paths
    assert len([p for p in paths if p.startswith("/api/v1/")]) >= 20, paths
    client = APIClient()
    for path in paths:
        for method in ("get", "post"):
            response = getattr(client, method)(path, {}, format="json")
            assert response.status_code == 401, (method, path, response.status_code)
            assert response["WWW-Authenticate"] == 'Bearer realm="api"', path
            assert set(response.json()) == {"detail"}, path


def test_a_bad_token_is_not_anonymous(world):
    client = APIClient()
    for header in ("Bearer", "Bearer relay_nope_nope", "Bearer a b", "Bearer relay_"):
        response = client.get("/api/v1/jobs/", HTTP_AUTHORIZATION=header)
        assert response.status_code == 401, header
        assert response.json()["detail"] in ("Invalid API token.", "Malformed Authorization "
                                             "header: use 'Bearer <token>'."), header
