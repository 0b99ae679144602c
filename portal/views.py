"""Public pages."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Q
from django.http import HttpRequest, JsonResponse
from django.views.generic import TemplateView

from lists.models import CreditList, Listing


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


class HomeView(TemplateView):
    template_name = "portal/home.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        in_force = Q(listings__status__in=Listing.IN_FORCE)
        lists = (
            CreditList.objects.public()
            .select_related("agency")
            .annotate(entries=Count("listings", filter=in_force))
        )
        return super().get_context_data(lists=lists, **kwargs)
