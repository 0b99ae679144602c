from django.apps import AppConfig


class PortalConfig(AppConfig):
    """Own the public site, the staff area and the REST API."""

    name = "portal"
    verbose_name = "Portal"
