"""The Content-Security-Policy breaks nothing: no violation on the public and staff pages (issue 8)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from agencies.models import Membership
from lists.models import Batch, CreditList
from lists.services.measures import apply_measures
from tests.factories import ListingFactory, MembershipFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_no_page_violates_the_content_security_policy(live_server, browser_page):
    listing = ListingFactory()
    apply_measures()
    tax_list = CreditList.objects.get(code="TAX_MAJOR_VIOLATION")
    member = MembershipFactory(agency=tax_list.agency, role=Membership.Role.APPROVER).user
    batch = Batch.objects.create(credit_list=tax_list, origin=Batch.Origin.UPLOAD, uploaded_by=member)
    page, violations = browser_page, []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda e: violations.append(str(e)))
    public = [
        "home",
        "public:search",
        "public:agency-list",
        "public:list-list",
        "public:measure-list",
        "public:statistics",
    ]
    for name in public:
        page.goto(live_server.url + reverse(name))
    page.goto(live_server.url + reverse("public:subject-detail", args=[listing.subject_id]))
    page.goto(live_server.url + reverse("staff:login"))
    page.fill("input[name=username]", member.username)
    page.fill("input[name=password]", "correct-horse-battery")
    with page.expect_navigation():
        page.locator("form.staff-form [type=submit]").click()
    for url in (reverse("staff:dashboard"), reverse("staff:case-list"), reverse("staff:totp")):
        page.goto(live_server.url + url)
    page.goto(live_server.url + reverse("staff:batch-detail", args=[batch.pk]))  # busy: the poller runs
    page.wait_for_timeout(1500)
    assert not violations, violations
