"""/api/docs/ in a real browser: Swagger UI loads from Relay's own static files under the
dashboard's Content-Security-Policy (no CSP violation), reads the schema with the logged-in
session and lists the API's operations."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.slow


def test_the_api_docs_render_under_the_content_security_policy(login, live_server):
    page = login("viewer")
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text)
            if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    external: list[str] = []
    page.on("request", lambda request: None if request.url.startswith(live_server.url)
            else external.append(request.url))
    response = page.goto("/api/docs/")
    assert response.status == 200
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/v1/jobs/" in p for p in paths), paths
    expect(page.get_by_text("Relay API").first).to_be_visible()
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
    assert external == [], external
