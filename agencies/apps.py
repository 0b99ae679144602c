from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AgenciesConfig(AppConfig):
    """Own who publishes: agencies, staff membership and roles, API credentials, the audit log."""

    name = "agencies"
    verbose_name = "Agencies"

    def ready(self) -> None:
        from .audit_guard import install_after_migrate

        # The audit log's append-only trigger (agencies/sql/audit_append_only.sql), idempotent.
        post_migrate.connect(install_after_migrate, sender=self, dispatch_uid="agencies.audit_guard")
