"""Scopes an API key must hold for each endpoint."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from agencies.models import ApiKey


def key_of(request: Request) -> ApiKey | None:
    """Return the request's API key, or None when anonymous."""
    return request.auth if isinstance(request.auth, ApiKey) else None


def has_scope(request: Request, scope: str) -> bool:
    """Return whether the request's key holds the scope (operator holds every scope)."""
    key = key_of(request)
    return key is not None and (scope in key.scopes or ApiKey.Scope.OPERATOR in key.scopes)


class PublicRead(BasePermission):
    """Anyone may read public data; a key used for it must hold `read` (or a wider scope)."""

    message = "This API key lacks the read scope."

    def has_permission(self, request: Request, view: Any) -> bool:
        key = key_of(request)
        return key is None or bool(set(key.scopes) & {"read", "screen", "operator"})


class _ScopeRequired(BasePermission):
    scope = ""

    @property
    def message(self) -> str:  # type: ignore[override]
        return f"An API key with the {self.scope} scope is required."

    def has_permission(self, request: Request, view: Any) -> bool:
        return has_scope(request, self.scope)


class CanScreen(_ScopeRequired):
    scope = ApiKey.Scope.SCREEN


class CanPush(_ScopeRequired):
    scope = ApiKey.Scope.PUSH


class HasKey(BasePermission):
    """Any valid API key (watchlists and webhooks belong to a key)."""

    message = "An API key is required."

    def has_permission(self, request: Request, view: Any) -> bool:
        return key_of(request) is not None


class IsOperator(_ScopeRequired):
    scope = ApiKey.Scope.OPERATOR
