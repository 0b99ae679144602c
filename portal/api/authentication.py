"""API key authentication: `Authorization: Bearer xy_…` or `X-API-Key: xy_…`."""

from __future__ import annotations

import time
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from agencies.models import ApiKey

KEY_PREFIX = "xy_"
# Keys are looked up on every call; a short in-process cache keeps that off the database.
# Revoking a key therefore takes effect within KEY_CACHE_SECONDS on every web worker.
KEY_CACHE_SECONDS = 10
_key_cache: dict[str, tuple[float, ApiKey]] = {}
# last_used_at is a hint for operators; writing it on every call would double the write load.
LAST_USED_RESOLUTION_SECONDS = 300


def presented_key(request: Request) -> str | None:
    """Return the API key presented with the request, or None."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.META.get("HTTP_X_API_KEY", "").strip() or None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Authenticate a request by the sha256 of its API key; the request.user stays anonymous."""

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        secret = presented_key(request)
        if secret is None:
            return None
        if not secret.startswith(KEY_PREFIX):
            raise exceptions.AuthenticationFailed("Malformed API key.")
        key = _cached_key(ApiKey.hash_secret(secret))
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        _touch(key)
        return AnonymousUser(), key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


def _cached_key(key_hash: str) -> ApiKey | None:
    """Return the usable key with this hash, from the cache when it was looked up just now."""
    now = time.monotonic()
    cached = _key_cache.get(key_hash)
    if cached and now - cached[0] < KEY_CACHE_SECONDS:
        return cached[1]
    key = ApiKey.objects.usable().select_related("agency").filter(key_hash=key_hash).first()
    if key is None:
        _key_cache.pop(key_hash, None)
        return None
    if len(_key_cache) > 10_000:
        _key_cache.clear()
    _key_cache[key_hash] = (now, key)
    return key


def _touch(key: ApiKey) -> None:
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > LAST_USED_RESOLUTION_SECONDS:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Describe the API key scheme in the OpenAPI schema."""

    target_class = "portal.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "An API key: xy_…"}
