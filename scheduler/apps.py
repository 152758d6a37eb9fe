from django.apps import AppConfig


class SchedulerConfig(AppConfig):
    name = "scheduler"
    verbose_name = "Relay scheduler and workflows"
    default_auto_field = "django.db.models.BigAutoField"
