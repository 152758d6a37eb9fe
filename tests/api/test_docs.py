"""The OpenAPI schema and the interactive docs: served to Relay users only, with Swagger UI
from Relay's own static files (no CDN: the machine may have no internet access) and no
inline script, so the dashboard's Content-Security-Policy lets the page run."""

from __future__ import annotations

import json
import re

from django.contrib.staticfiles import finders


def test_the_schema_is_openapi_3_and_needs_a_role(world, api_for):
    assert api_for("anonymous").get("/api/schema/").status_code == 401
    assert api_for("norole").get("/api/schema/").status_code == 403
    response = api_for("viewer").get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/jobs/" in schema["paths"] and "/api/v1/runs/{id}/rerun/" in schema["paths"]
    assert not any(path.startswith("/api/schema") for path in schema["paths"])
    assert schema["components"]["securitySchemes"]["apiToken"] == {
        "type": "http", "scheme": "bearer",
        "description": "A personal API token from the admin (relay_...)."}
    enqueue = schema["paths"]["/api/v1/jobs/"]["post"]["responses"]
    assert {"200", "201", "400", "401", "403", "409", "429"} <= set(enqueue)
    yaml = api_for("viewer").get("/api/schema/")
    assert yaml.status_code == 200 and yaml.content.startswith(b"openapi: 3.")


def test_the_docs_page_loads_swagger_ui_from_local_files(world, api_for):
    browser = api_for("viewer", session=True)
    page = browser.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    policy = page["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "unsafe-eval" not in policy
    sources = re.findall(r'<script src="([^"]+)"', html)
    assets = [s for s in sources if s.startswith("/static/")]
    assert len(assets) == 2 and all("drf_spectacular_sidecar/swagger-ui-dist/" in s
                                    for s in assets), sources
    for asset in assets:
        assert finders.find(asset.removeprefix("/static/")), asset
    # The start script is a separate request, not inline (the CSP allows no inline script).
    assert "<script>" not in html
    starter = next(s for s in sources if not s.startswith("/static/"))
    script = browser.get(starter.replace("&amp;", "&"))
    assert script.status_code == 200 and script["Content-Type"].startswith(
        "application/javascript")
    assert "/api/schema/" in script.content.decode()
    assert "//cdn" not in html and "https://" not in html
