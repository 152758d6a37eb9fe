"""The OpenAPI schema (/api/schema/) and the interactive docs (/api/docs/).

Both need a Relay role, like the API itself: log in to the dashboard and open /api/docs/, or
fetch the schema with a token. A refusal is JSON here too (the views' own renderers would
answer in YAML or as a bare HTML page). The docs page loads Swagger UI from Relay's own
static files (drf-spectacular-sidecar) and its start script from a URL, so it works with no
internet access and under the dashboard's Content-Security-Policy (no inline script).
"""

from __future__ import annotations

from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response


class JSONErrors:
    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)  # type: ignore[misc]
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return response


class SchemaView(JSONErrors, SpectacularAPIView):
    pass


class DocsView(JSONErrors, SpectacularSwaggerSplitView):
    pass
