from django.apps import AppConfig


class SchedulerConfig(AppConfig):
    name = "scheduler"
    verbose_name = "Relay scheduler and workflows"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from queues.signals import job_finished
        from scheduler.receivers import on_job_finished

        job_finished.connect(on_job_finished, dispatch_uid="scheduler.advance_runs")

        from django.core import checks

        from scheduler.alerts.checks import alert_channels

        checks.register(alert_channels, "relay")
