"""Relay's URL map: each app's pages and API are routed here."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from dashboard.api.docs import DocsView, SchemaView
from dashboard.metrics.view import metrics
from relay_project.health import healthz

# JSON for unknown /api/ paths, the usual page elsewhere.
handler404 = "dashboard.api.errors.not_found"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="dashboard:overview", permanent=False)),
    path("dashboard/", include("dashboard.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    # Probes and monitoring: /healthz needs no login; /metrics is guarded by RELAY's
    # METRICS_TOKEN / METRICS_ALLOWED_IPS.
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    # REST API (dashboard.api): the schema and the docs need a Relay role, like the API.
    path("api/v1/", include("dashboard.api.urls")),
    path("api/schema/", SchemaView.as_view(), name="api-schema"),
    path("api/docs/", DocsView.as_view(url_name="api-schema"), name="api-docs"),
]
