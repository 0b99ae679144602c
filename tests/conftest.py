"""Shared fixtures. Tests use the real PostgreSQL and Redis named by DATABASE_URL / REDIS_URL."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.core.management import call_command

# Records every response, log line and export for tests/test_no_full_person_id.py (issue 8).
pytest_plugins = ["tests.pii_scan"]


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):  # type: ignore[no-untyped-def]
    """Load the reference data (agencies, lists, measures) once into the test database."""
    with django_db_blocker.unblock():
        call_command("load_reference", verbosity=0)


@pytest.fixture(autouse=True)
def _reference_data(request):  # type: ignore[no-untyped-def]
    """Reload the reference data when an earlier transactional test flushed the database."""
    uses_db = request.node.get_closest_marker("django_db") or {"db", "transactional_db", "live_server"} & set(
        request.fixturenames
    )
    if not uses_db:
        return
    request.getfixturevalue("_django_db_helper")
    from lists.models import CreditList

    if not CreditList.objects.exists():
        call_command("load_reference", verbosity=0)


@pytest.fixture(autouse=True)
def _clear_cache():  # type: ignore[no-untyped-def]
    """Start every test with an empty cache so rate limits and cached pages do not leak."""
    cache.clear()
    yield
