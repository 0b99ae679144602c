"""Install the database trigger that keeps the audit log append-only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

SQL_FILE = Path(__file__).resolve().parent / "sql" / "audit_append_only.sql"
TABLE = "agencies_auditevent"


def install_audit_guard(connection: BaseDatabaseWrapper) -> bool:
    """Create or replace the append-only trigger on the audit table; return whether it was installed."""
    if connection.vendor != "postgresql" or TABLE not in connection.introspection.table_names():
        return False
    with connection.cursor() as cursor:
        cursor.execute(SQL_FILE.read_text())
    return True


def install_after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """Install the guard after every migrate, so test databases built without migrations have it too."""
    from django.db import connections

    install_audit_guard(connections[using])
