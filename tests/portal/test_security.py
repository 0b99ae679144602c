"""Security hardening (issue 8): production settings, CSP, sign-in, TOTP, sessions, the audit log."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from agencies.audit_guard import install_audit_guard
from agencies.models import AuditEvent, Membership
from agencies.services import record_event
from lists.models import Batch, CreditList
from portal.security import IDLE_KEY
from tests.factories import ListingFactory, MembershipFactory

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct-horse-battery"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
)


@pytest.fixture(autouse=True)
def _fast_passwords(settings):  # type: ignore[no-untyped-def]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- production settings ------------------------------------------------------------------------


def test_check_deploy_is_clean_under_production_settings():
    env = {
        **os.environ,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "x7Kq-" + "Rz9vLm2Tq8Wc4Yp6Hn3Bd5Fg7Jk1Ms0Ux" * 2,
        "UPLOAD_ENCRYPTION_KEY": "Qm4-" + "Vt8Lp2Xs6Dk9Hf3Jw5Nb7Rc1Zg0Ye4" * 2,
        "DJANGO_SECURE_SSL_REDIRECT": "1",
        "DJANGO_HSTS_SECONDS": "31536000",
        "DJANGO_ALLOWED_HOSTS": "xinyong.example.org",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set for the browser tests in this process only
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_cookies_and_sessions_are_hardened(settings):
    assert settings.SESSION_COOKIE_HTTPONLY and settings.CSRF_COOKIE_HTTPONLY
    assert settings.SESSION_EXPIRE_AT_BROWSER_CLOSE
    assert settings.SECURE_CONTENT_TYPE_NOSNIFF
    assert settings.SESSION_IDLE_SECONDS > 0


# --- headers and the Content-Security-Policy ----------------------------------------------------


class InlineFinder(HTMLParser):
    """Collect inline scripts, inline event handlers, style attributes and <style> blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.found.append(f"inline <script> at line {self.getpos()[0]}")
        if tag == "style":
            self.found.append(f"<style> block at line {self.getpos()[0]}")
        self.found += [
            f"<{tag} {name}=…> at line {self.getpos()[0]}" for name in names if name.startswith("on")
        ]
        if "style" in names:
            self.found.append(f"<{tag} style=…> at line {self.getpos()[0]}")


def inline_code(html: str) -> list[str]:
    finder = InlineFinder()
    finder.feed(html)
    return finder.found


def public_urls(listing) -> list[str]:  # type: ignore[no-untyped-def]
    """Return every public page's URL, filled from one published listing (from the resolver)."""
    fill = {"pk": listing.subject_id, "listing_id": listing.pk}
    urls = [reverse("home")]
    for resolver in get_resolver().url_patterns:
        if isinstance(resolver, URLResolver) and resolver.namespace in {"public", "cases"}:
            for pattern in resolver.url_patterns:
                assert isinstance(pattern, URLPattern)
                kwargs = list(getattr(pattern.pattern, "converters", {}))
                if set(kwargs) <= set(fill):
                    urls.append(
                        reverse(f"{resolver.namespace}:{pattern.name}", kwargs={k: fill[k] for k in kwargs})
                    )
    return urls


def test_every_public_page_sends_the_csp_and_has_no_inline_script(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    listing = ListingFactory()
    urls = public_urls(listing)
    assert len(urls) >= 10, urls
    problems = []
    for url in urls:
        response = Client().get(url)
        assert response.status_code < 500, url
        assert response["Content-Security-Policy"] == CSP, url
        assert response["X-Frame-Options"] == "DENY" and response["Referrer-Policy"] == "same-origin", url
        assert (
            response["X-Content-Type-Options"] == "nosniff" and "camera=()" in response["Permissions-Policy"]
        )
        if response.get("Content-Type", "").startswith("text/html") and not getattr(
            response, "streaming", False
        ):
            problems += [f"{url}: {p}" for p in inline_code(response.content.decode())]
    assert not problems, problems


def test_no_template_has_inline_script_event_handlers_or_styles():
    problems = []
    for template in sorted((ROOT / "templates").rglob("*.html")):
        problems += [f"{template.relative_to(ROOT)}: {p}" for p in inline_code(template.read_text())]
    assert not problems, problems


def test_a_views_own_stricter_policy_is_kept():
    from django.http import HttpResponse

    from portal.security import SecurityHeadersMiddleware

    def view(request):  # type: ignore[no-untyped-def]
        response = HttpResponse()
        response["Content-Security-Policy"] = "sandbox; default-src 'none'"
        return response

    response = SecurityHeadersMiddleware(view)(None)  # type: ignore[arg-type]
    assert response["Content-Security-Policy"] == "sandbox; default-src 'none'"


# --- staff sign-in: throttling, password rules, idle timeout ------------------------------------


@pytest.fixture
def tax_list() -> CreditList:
    return CreditList.objects.get(code="TAX_MAJOR_VIOLATION")


def sign_in(client: Client, username: str, password: str, **extra: str):  # type: ignore[no-untyped-def]
    return client.post(reverse("staff:login"), {"username": username, "password": password, **extra})


def test_failed_sign_ins_lock_the_username_out_with_a_clear_message(settings, tax_list):
    settings.LOGIN_FAILURES_PER_USERNAME = 3
    user = MembershipFactory(agency=tax_list.agency).user
    client = Client(REMOTE_ADDR="198.51.100.7")
    for _ in range(3):
        assert sign_in(client, user.username, "wrong-password").status_code == 200
    response = sign_in(Client(REMOTE_ADDR="198.51.100.8"), user.username, PASSWORD)
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()
    assert AuditEvent.objects.filter(action="staff.login_failed").count() == 3
    assert not AuditEvent.objects.filter(action="staff.login").exists()


def test_failed_sign_ins_from_one_address_lock_that_address_out(settings, tax_list):
    settings.LOGIN_FAILURES_PER_IP = 4
    user = MembershipFactory(agency=tax_list.agency).user
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    for n in range(4):
        sign_in(attacker, f"guess{n}", "wrong-password")
    assert sign_in(attacker, user.username, PASSWORD).status_code == 429
    assert sign_in(Client(REMOTE_ADDR="203.0.113.10"), user.username, PASSWORD).status_code == 302


def test_behind_a_proxy_each_client_is_counted_and_recorded_by_its_own_address(settings, tax_list):
    """The proxy (REMOTE_ADDR) appends the address it saw; what the client wrote before it is ignored."""
    settings.LOGIN_FAILURES_PER_IP = 3
    settings.TRUSTED_PROXY_COUNT = 1
    user = MembershipFactory(agency=tax_list.agency).user

    def via_proxy(forwarded: str) -> Client:
        return Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)

    for n in range(3):  # a new made-up address each time, before the one the proxy appends
        sign_in(via_proxy(f"192.0.2.{n}, 203.0.113.9"), f"guess{n}", "wrong-password")
    assert sign_in(via_proxy("203.0.113.9"), user.username, PASSWORD).status_code == 429
    assert sign_in(via_proxy("203.0.113.10"), user.username, PASSWORD).status_code == 302
    addresses = AuditEvent.objects.filter(action__startswith="staff.login").values_list(
        "ip_address", flat=True
    )
    assert set(addresses) == {"203.0.113.9", "203.0.113.10"}


def test_without_a_configured_proxy_a_forwarded_header_is_ignored(settings, tax_list):
    settings.LOGIN_FAILURES_PER_IP = 3
    user = MembershipFactory(agency=tax_list.agency).user
    for n in range(3):
        spoofing = Client(REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
        sign_in(spoofing, f"guess{n}", "wrong-password")
    assert sign_in(Client(REMOTE_ADDR="203.0.113.9"), user.username, PASSWORD).status_code == 429


def test_a_successful_sign_in_clears_the_usernames_failures(settings, tax_list):
    settings.LOGIN_FAILURES_PER_USERNAME = 3
    user = MembershipFactory(agency=tax_list.agency).user
    client = Client()
    sign_in(client, user.username, "wrong-password")
    sign_in(client, user.username, "wrong-password")
    assert sign_in(client, user.username, PASSWORD).status_code == 302
    other = Client()
    sign_in(other, user.username, "wrong-password")
    sign_in(other, user.username, "wrong-password")
    assert sign_in(other, user.username, PASSWORD).status_code == 302


@pytest.mark.parametrize("password", ["short-pw1", "password123456", "qwertyuiop123", "123456789012345"])
def test_weak_passwords_are_refused(password):
    with pytest.raises(ValidationError):
        validate_password(password)


def test_a_strong_password_is_accepted():
    validate_password("kettle-orbit-lantern-42")


def test_an_idle_staff_session_is_signed_out(settings, tax_list):
    user = MembershipFactory(agency=tax_list.agency).user
    client = Client()
    client.force_login(user)
    assert client.get(reverse("staff:dashboard")).status_code == 200
    session = client.session
    session[IDLE_KEY] = int(time.time()) - settings.SESSION_IDLE_SECONDS - 5
    session.save()
    response = client.get(reverse("staff:dashboard"))
    assert response.status_code == 302 and reverse("staff:login") in response["Location"]


# --- TOTP second factor ----------------------------------------------------------------------------


def token_for(device: TOTPDevice, offset: int = 0) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + offset
    return f"{totp.token():0{device.digits}d}"


def enrol(client: Client, user) -> TOTPDevice:  # type: ignore[no-untyped-def]
    page = client.get(reverse("staff:totp")).content.decode()
    assert "otpauth://totp/" in page and 'src="data:image/svg+xml' in page
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    response = client.post(reverse("staff:totp"), {"token": token_for(device)})
    assert response.status_code == 302, response.content.decode()[:500]
    device.refresh_from_db()
    assert device.confirmed
    return device


def test_a_staff_member_enrols_an_authenticator_and_then_needs_its_code(tax_list):
    user = MembershipFactory(agency=tax_list.agency).user
    client = Client()
    client.force_login(user)
    device = enrol(client, user)
    assert AuditEvent.objects.filter(action="staff.totp_enrolled", actor=user).exists()
    assert sign_in(Client(), user.username, PASSWORD).status_code == 200  # no code: refused
    assert sign_in(Client(), user.username, PASSWORD, otp_token="000000").status_code == 200
    # django-otp slows down guessing after failures (1 s, 2 s, 4 s, …): wait that out here.
    TOTPDevice.objects.filter(pk=device.pk).update(
        throttling_failure_count=0, throttling_failure_timestamp=None
    )
    signed_in = Client()
    response = sign_in(signed_in, user.username, PASSWORD, otp_token=token_for(device, offset=30))
    assert response.status_code == 302
    assert signed_in.get(reverse("staff:dashboard")).status_code == 200


def test_an_unverified_session_of_an_enrolled_member_is_sent_to_the_code_page(tax_list):
    user = MembershipFactory(agency=tax_list.agency).user
    enrol_client = Client()
    enrol_client.force_login(user)
    enrol(enrol_client, user)
    client = Client()
    client.force_login(user)  # a password-only session (e.g. from before enrolment)
    response = client.get(reverse("staff:dashboard"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("staff:totp"))


def _received_batch(credit_list: CreditList) -> Batch:
    uploader = MembershipFactory(agency=credit_list.agency, role=Membership.Role.UPLOADER).user
    return Batch.objects.create(credit_list=credit_list, origin=Batch.Origin.UPLOAD, uploaded_by=uploader)


def test_approvers_must_verify_with_totp_before_publishing_when_required(settings, tax_list):
    settings.REQUIRE_TOTP_FOR_APPROVERS = True
    batch = _received_batch(tax_list)
    approver = MembershipFactory(agency=tax_list.agency, role=Membership.Role.APPROVER).user
    client = Client()
    client.force_login(approver)
    url = reverse("staff:batch-publish", args=[batch.pk])
    response = client.post(url)
    assert response.status_code == 302 and response["Location"].startswith(reverse("staff:totp"))
    assert not AuditEvent.objects.filter(action__startswith="batch.publish").exists()
    assert client.get(reverse("staff:batch-detail", args=[batch.pk])).status_code == 200  # reading is fine
    enrol(client, approver)
    response = client.post(url)
    assert not response["Location"].startswith(reverse("staff:totp"))


def test_without_the_requirement_approvers_need_no_totp(settings, tax_list):
    settings.REQUIRE_TOTP_FOR_APPROVERS = False
    batch = _received_batch(tax_list)
    approver = MembershipFactory(agency=tax_list.agency, role=Membership.Role.APPROVER).user
    client = Client()
    client.force_login(approver)
    response = client.post(reverse("staff:batch-publish", args=[batch.pk]))
    assert response["Location"] == reverse("staff:batch-detail", args=[batch.pk])


def test_the_totp_page_does_not_redirect_off_site(tax_list):
    user = MembershipFactory(agency=tax_list.agency).user
    client = Client()
    client.force_login(user)
    client.get(reverse("staff:totp"))
    device = TOTPDevice.objects.get(user=user)
    response = client.post(
        reverse("staff:totp") + "?next=https://evil.example/", {"token": token_for(device)}
    )
    assert response["Location"] == reverse("staff:dashboard")


# --- the audit log is append-only -----------------------------------------------------------------


def test_the_application_cannot_change_or_remove_audit_events():
    event = record_event(action="test.event")
    with pytest.raises(ValueError):
        event.save()
    with pytest.raises(ValueError):
        event.delete()
    with pytest.raises(ValueError):
        AuditEvent.objects.filter(pk=event.pk).update(action="forged")
    with pytest.raises(ValueError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "test.event"


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE agencies_auditevent SET action = 'forged' WHERE id = %s",
        "DELETE FROM agencies_auditevent WHERE id = %s",
    ],
)
def test_the_database_refuses_raw_updates_and_deletes_of_the_audit_log(sql):
    event = record_event(action="test.event")
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).action == "test.event"


def test_the_audit_guard_installs_idempotently():
    assert install_audit_guard(connection) and install_audit_guard(connection)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'agencies_auditevent'::regclass AND NOT tgisinternal"
        )
        assert cursor.fetchone()[0] == 1


def test_the_admin_signs_in_through_the_throttled_staff_sign_in():
    response = Client().get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"] == reverse("staff:login") + "?next=/admin/"


def test_sign_in_still_works_while_redis_is_down(settings, tax_list):
    # The throttle fails open (logged): passwords and TOTP still guard the door.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    user = MembershipFactory(agency=tax_list.agency).user
    assert sign_in(Client(), user.username, "wrong-password").status_code == 200
    assert sign_in(Client(), user.username, PASSWORD).status_code == 302
