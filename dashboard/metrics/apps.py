from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "dashboard.metrics"
    label = "relay_metrics"
    verbose_name = "Relay metrics"
    default_auto_field = "django.db.models.BigAutoField"
