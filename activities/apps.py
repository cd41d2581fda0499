from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class ActivitiesConfig(AppConfig):
    name = "activities"
    verbose_name = "Email activities"

    def ready(self) -> None:
        # Each app's ``receivers`` module connects its signal receivers (crm's approval
        # releases blocked inbound mail: activities.receivers).
        autodiscover_modules("receivers")
