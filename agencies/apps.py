from django.apps import AppConfig


class AgenciesConfig(AppConfig):
    """Own who publishes: agencies, staff membership and roles, API credentials, the audit log."""

    name = "agencies"
    verbose_name = "Agencies"
