from importlib import import_module

from django.apps import AppConfig


class ActivitiesConfig(AppConfig):
    name = "activities"
    verbose_name = "Email activities"

    def ready(self) -> None:
        # ``receivers`` imports the services, and so the models: it can be imported only
        # once the registry is ready, by name, as Django's own autodiscovery does. The
        # layers contract places ``apps`` above it all the same (pyproject.toml).
        import_module(f"{self.name}.receivers").connect()
