"""Public pages."""

from __future__ import annotations

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse

from portal.public.views import HomeView  # noqa: F401 - the home page moved to the public app


def healthz(request: HttpRequest) -> JsonResponse:
    """Answer 200 when the database and Redis both answer, 503 otherwise."""
    checks = {"database": _database_ok(), "cache": _cache_ok()}
    return JsonResponse(checks, status=200 if all(checks.values()) else 503)


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False


def _cache_ok() -> bool:
    try:
        cache.set("healthz", "1", 5)
        return cache.get("healthz") == "1"
    except Exception:
        return False
