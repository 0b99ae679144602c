"""Security middleware of the portal (response headers, the staff idle timeout) and the client's address."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse

IDLE_KEY = "_last_seen"


def client_ip(request: HttpRequest) -> str | None:
    """Return the address a request came from, for sign-in and filing limits and the audit log.

    Behind TRUSTED_PROXY_COUNT proxies it is the entry that many places from the right of
    X-Forwarded-For: the one the outermost proxy wrote. Entries further left are the client's
    own words. A header too short to have passed every proxy, or not an address, is not believed.
    """
    remote = request.META.get("REMOTE_ADDR")
    hops = settings.TRUSTED_PROXY_COUNT
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if hops <= 0 or len(forwarded) < hops:
        return remote
    try:
        return str(ipaddress.ip_address(forwarded[-hops]))
    except ValueError:
        return remote


class SecurityHeadersMiddleware:
    """Send the Content-Security-Policy and Permissions-Policy headers with every response.

    A view may set its own (stricter) policy, e.g. the sandbox on evidence downloads: it is kept.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        return response


class IdleTimeoutMiddleware:
    """Sign a staff member out after SESSION_IDLE_SECONDS without a request.

    SESSION_COOKIE_AGE bounds a session's whole life; this bounds an unattended browser.
    The timestamp is written at most once a minute so that every page view is not a session save.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        idle = settings.SESSION_IDLE_SECONDS
        user = getattr(request, "user", None)
        if idle and user is not None and user.is_authenticated:
            now = int(time.time())
            last = request.session.get(IDLE_KEY, now)
            if now - last > idle:
                logout(request)
            elif now - last >= 60 or IDLE_KEY not in request.session:
                request.session[IDLE_KEY] = now
        return self.get_response(request)
