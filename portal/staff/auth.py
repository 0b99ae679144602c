"""Staff sign-in hardening: failed-login throttling, the optional TOTP second factor, approvals.

- Failed sign-ins are counted in the cache (Redis) per username and per client address; past
  the limit, sign-in is refused for LOGIN_LOCKOUT_SECONDS with a clear message (HTTP 429).
- A staff member who enrolled an authenticator (TOTP) must give its code when signing in, and
  a session that has not been verified with it is sent to the verification page.
- With REQUIRE_TOTP_FOR_APPROVERS on, approving, publishing, rejecting, rolling back and
  deciding cases need a TOTP-verified session.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import redis
import segno
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django_otp import login as otp_login
from django_otp import match_token, user_has_device
from django_otp.plugins.otp_totp.models import TOTPDevice

from agencies.services import record_event

from ..security import client_ip
from .views import LoginView

logger = logging.getLogger(__name__)
LOCKED_MESSAGE = (
    "登录失败次数过多，请 {minutes} 分钟后再试。Too many failed sign-ins; try again in {minutes} minutes."
)
INVALID_LOGIN = "用户名、密码或验证码不正确。Enter a correct username, password and (if you enrolled an authenticator) code."
# Pages a signed-in but not yet TOTP-verified member may still open.
OPEN_PAGES = {"login", "logout", "totp"}
# POSTs that approve or decide: they need a verified session when REQUIRE_TOTP_FOR_APPROVERS is on.
APPROVAL_PAGES = {"batch-publish", "batch-reject", "batch-rollback", "case-decide"}


def _failure_keys(request: HttpRequest, username: str) -> list[tuple[str, int]]:
    # Hash the typed name: cache keys must be short and must not carry whatever an attacker typed.
    user_key = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return [
        (f"staff:login:fail:user:{user_key}", settings.LOGIN_FAILURES_PER_USERNAME),
        (f"staff:login:fail:ip:{client_ip(request) or 'unknown'}", settings.LOGIN_FAILURES_PER_IP),
    ]


def is_locked_out(request: HttpRequest, username: str) -> bool:
    """Return whether sign-in is refused for this username or client address."""
    keys = _failure_keys(request, username)
    try:
        counts = cache.get_many([key for key, _ in keys])
    except redis.RedisError:
        # Fail open: staff can still sign in while Redis is down (passwords and TOTP still apply).
        logger.exception("login throttle unavailable")
        return False
    return any(counts.get(key, 0) >= limit for key, limit in keys)


def count_failure(request: HttpRequest, username: str) -> None:
    """Count one failed sign-in; the lockout runs from the last failure once a limit is reached."""
    window = settings.LOGIN_LOCKOUT_SECONDS
    try:
        for key, limit in _failure_keys(request, username):
            cache.add(key, 0, window)
            if cache.incr(key) >= limit:
                cache.touch(key, window)
    except (redis.RedisError, ValueError):
        logger.exception("login throttle unavailable")


def clear_failures(request: HttpRequest, username: str) -> None:
    """Forget the username's failures after a successful sign-in (the address's count stays)."""
    try:
        cache.delete(_failure_keys(request, username)[0][0])
    except redis.RedisError:
        logger.exception("login throttle unavailable")


class SignInForm(AuthenticationForm):
    """Username and password, plus the authenticator code for members who enrolled one."""

    otp_token = forms.CharField(
        label="验证码 Authenticator code",
        required=False,
        max_length=8,
        help_text="Only if you enrolled an authenticator app.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )
    error_messages = {**AuthenticationForm.error_messages, "invalid_login": INVALID_LOGIN}

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        if self.request is not None and is_locked_out(self.request, username):
            minutes = max(1, settings.LOGIN_LOCKOUT_SECONDS // 60)
            raise ValidationError(LOCKED_MESSAGE.format(minutes=minutes), code="locked")
        cleaned = super().clean()
        user = self.get_user()
        if user is not None and user_has_device(user, confirmed=True):
            device = match_token(user, self.cleaned_data.get("otp_token") or "")
            if device is None:
                # The same message as a wrong password: a missing code must not confirm the password.
                raise ValidationError(INVALID_LOGIN, code="invalid_login")
            user.otp_device = device  # type: ignore[attr-defined]  # django_otp verifies the session on login
        return cleaned


class ThrottledLoginView(LoginView):
    """The staff sign-in page with failure throttling and the optional TOTP code."""

    form_class = SignInForm

    def form_valid(self, form: Any) -> HttpResponse:
        clear_failures(self.request, form.cleaned_data.get("username") or "")
        return super().form_valid(form)

    def form_invalid(self, form: Any) -> HttpResponse:
        username = (self.request.POST.get("username") or "")[:150]
        locked = form.has_error(NON_FIELD_ERRORS, "locked")
        if not locked:
            # Attempts refused while locked out are not audited: that keeps a flood from filling the log.
            count_failure(self.request, username)
            record_event(
                action="staff.login_failed", actor_label=username[:100], ip_address=client_ip(self.request)
            )
        response = super().form_invalid(form)
        response.status_code = 429 if locked else 200
        return response


class TotpForm(forms.Form):
    token = forms.CharField(label="验证码 Code from your authenticator app", max_length=8)


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse("staff:dashboard")


@never_cache
@login_required
def totp(request: HttpRequest) -> HttpResponse:
    """Enrol an authenticator (TOTP), or verify this session with it."""
    user: Any = request.user
    enrolled = user_has_device(user, confirmed=True)
    if enrolled and user.is_verified():
        return render(request, "staff/totp.html", {"state": "verified"})
    device = None if enrolled else _pending_device(user)
    form = TotpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if _verify_session(request, device, form.cleaned_data["token"]):
            return HttpResponseRedirect(_next_url(request))
        form.add_error("token", "验证码不正确 The code is not correct.")
    context: dict[str, Any] = {
        "state": "enrol" if device else "verify",
        "form": form,
        "next": _next_url(request),
    }
    if device is not None:
        context.update(
            otpauth_uri=device.config_url, qr_data_uri=segno.make(device.config_url).svg_data_uri(scale=4)
        )
    return render(request, "staff/totp.html", context)


def _verify_session(request: HttpRequest, pending: TOTPDevice | None, token: str) -> bool:
    """Verify the session with a code; a pending device is confirmed by its first good code."""
    user: Any = request.user
    if pending is None:
        verified = match_token(user, token)
    else:
        verified = pending if pending.verify_token(token) else None
    if verified is None:
        return False
    if pending is not None:
        pending.confirmed = True
        pending.save(update_fields=["confirmed"])
        record_event(action="staff.totp_enrolled", actor=user, ip_address=client_ip(request))
    otp_login(request, verified)
    return True


def _pending_device(user: Any) -> TOTPDevice:
    """Return the member's unconfirmed authenticator, creating it with a fresh secret."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    return device or TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)


class StaffOtpMiddleware:
    """Send unverified sessions of enrolled members (staff area and admin), and unverified approvals, to the TOTP page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view: Any, args: Any, kwargs: Any) -> HttpResponse | None:
        match = request.resolver_match
        user: Any = getattr(request, "user", None)
        if match is None or match.namespace not in ("staff", "admin") or match.url_name in OPEN_PAGES:
            return None
        if user is None or not user.is_authenticated or user.is_verified():
            return None
        if user_has_device(user, confirmed=True):
            return _to_totp(request, "请先输入验证码 Enter your authenticator code first.")
        approving = request.method == "POST" and match.url_name in APPROVAL_PAGES
        if approving and settings.REQUIRE_TOTP_FOR_APPROVERS:
            return _to_totp(request, "审批前请先设置身份验证器 Enrol an authenticator before approving.")
        return None


def _to_totp(request: HttpRequest, message: str) -> HttpResponse:
    messages.warning(request, message)
    back = request.get_full_path() if request.method == "GET" else request.META.get("HTTP_REFERER", "")
    query = urlencode({"next": back}) if back else ""
    return redirect(f"{reverse('staff:totp')}?{query}" if query else reverse("staff:totp"))
