from django.apps import AppConfig


class ExamplesConfig(AppConfig):
    name = "relay_project.examples"
    label = "relay_examples"
    verbose_name = "Relay examples"
