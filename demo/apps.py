from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo data command (``load_demo_data``): it builds on both apps, so it lives
    above them."""

    name = "demo"
    verbose_name = "Demo data"
