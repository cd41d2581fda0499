from django.apps import AppConfig

from .folders import make_local_folders


class CommonConfig(AppConfig):
    name = "common"
    verbose_name = "Shared plumbing"

    def ready(self) -> None:
        make_local_folders()
