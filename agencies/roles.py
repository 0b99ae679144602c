"""Who may do what: operators see everything, staff act only for their agencies."""

from __future__ import annotations

from typing import Any

from .models import Agency, Membership

OPERATORS_GROUP = "operators"


def is_operator(user: Any) -> bool:
    """Return whether the user is a platform operator."""
    if not getattr(user, "is_authenticated", False):
        return False
    return bool(user.is_superuser or user.groups.filter(name=OPERATORS_GROUP).exists())


def has_role(user: Any, agency: Agency, *roles: str) -> bool:
    """Return whether the user holds one of the roles in the agency (operators hold all)."""
    if is_operator(user):
        return True
    if not getattr(user, "is_authenticated", False):
        return False
    memberships = Membership.objects.filter(user=user, agency=agency)
    return memberships.filter(role__in=roles).exists() if roles else memberships.exists()


def agencies_for(user: Any) -> Any:
    """Return the agencies the user may act for."""
    if is_operator(user):
        return Agency.objects.all()
    if not getattr(user, "is_authenticated", False):
        return Agency.objects.none()
    return Agency.objects.filter(memberships__user=user).distinct()
