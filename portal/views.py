"""Public pages."""

from __future__ import annotations

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse

from lists.services.health import late_work
from portal.public.views import HomeView  # noqa: F401 - the home page moved to the public app


def healthz(request: HttpRequest) -> JsonResponse:
    """Answer 200 when the database and Redis both answer, 503 otherwise."""
    checks = {"database": _database_ok(), "cache": _cache_ok()}
    return JsonResponse(checks, status=200 if all(checks.values()) else 503)


def healthz_work(request: HttpRequest) -> JsonResponse:
    """Answer 200 when no background work is late, 503 with what is (lists.services.health)."""
    late = late_work()
    return JsonResponse({"late": late}, status=503 if any(late.values()) else 200)


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
