"""A member of the public applies for credit repair; an agency approver decides it, in Chromium."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from agencies.models import Agency, Membership
from lists.models import Case, Change, Listing, Restriction
from lists.services.measures import apply_measures
from tests.factories import ListingFactory, MembershipFactory

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def log_in(page, live_server, user, cookie_name: str) -> None:  # type: ignore[no-untyped-def]
    """Log the staff member in through the login page, or with a session cookie until it exists."""
    try:
        login_url = reverse("staff:login")
    except NoReverseMatch:
        client = Client()
        client.force_login(user)
        cookie = client.cookies[cookie_name].value
        page.context.add_cookies([{"name": cookie_name, "value": cookie, "url": live_server.url}])
        return
    page.goto(live_server.url + login_url)
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", "correct-horse-battery")
    with page.expect_navigation():
        page.locator("main form [type=submit]").first.click()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_public_applies_for_repair_and_an_approver_approves_it(
    browser_page, chromium, live_server, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    listing = ListingFactory(decided_on=timezone.localdate() - dt.timedelta(days=400))
    apply_measures(listing_ids=[listing.pk])
    approver = MembershipFactory(agency=Agency.objects.get(code="sta"), role=Membership.Role.APPROVER).user

    # The applicant files, with a document, and writes down the number and code.
    page = browser_page
    page.goto(live_server.url + reverse("cases:repair-new", args=[listing.pk]))
    page.fill("input[name=applicant_name]", "北京测试科技有限公司")
    page.fill("input[name=applicant_email]", "legal@example.com")
    page.fill("textarea[name=statement]", "税款、滞纳金和罚款已全部缴清。")
    page.set_input_files(
        "input[name=evidence]", files=[{"name": "完税证明.pdf", "mimeType": "application/pdf", "buffer": PDF}]
    )
    page.check("input[name=commitment]")
    page.locator("form.case-form button[type=submit]").click()
    number = page.locator("#case-number").inner_text()
    code = page.locator("#access-code").inner_text()
    assert number.startswith("XF-")

    # The approver finds it in the queue and approves it.
    staff_context = chromium.new_context()
    staff_context.set_default_timeout(15_000)
    staff = staff_context.new_page()
    log_in(staff, live_server, approver, settings.SESSION_COOKIE_NAME)
    staff.goto(live_server.url + reverse("staff:case-list"))
    staff.get_by_role("link", name=number).click()
    assert staff.get_by_role("link", name="完税证明.pdf").is_visible()
    staff.select_option("select[name=decision]", "approve")
    staff.fill("textarea[name=reason]", "已核实缴款凭证")
    staff.locator("form.case-form button[type=submit]").click()
    assert "准予修复" in staff.locator("#case-status").inner_text()
    staff_context.close()

    # The applicant follows the case with the code and sees the decision.
    page.goto(live_server.url + reverse("cases:track"))
    page.fill("input[name=number]", number)
    page.fill("input[name=access_code]", code)
    page.locator("form.case-form button[type=submit]").click()
    assert "准予修复" in page.locator("#case-decision").inner_text()

    listing.refresh_from_db()
    assert listing.status == Listing.Status.REPAIRED
    assert not Restriction.objects.in_force().filter(listing=listing).exists()
    assert Change.objects.filter(listing=listing, op="remove", reason="repair").exists()
    assert Case.objects.get(number=number).decided_by == approver
