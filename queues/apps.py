from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class QueuesConfig(AppConfig):
    name = "queues"
    verbose_name = "Relay queues"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Import every installed app's tasks.py so its @task declarations are registered.
        autodiscover_modules("tasks")
