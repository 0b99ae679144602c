"""An uploader uploads a list, a second person publishes it, the public finds it; a rollback removes it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from agencies.models import Membership
from lists.models import Batch, CreditList, Listing
from lists.services import batches
from tests.factories import MembershipFactory, valid_uscc
from tests.lists.test_batches import load

NAME = "浏览器测试商贸有限公司"


def sign_in(page, live_server, user) -> None:  # type: ignore[no-untyped-def]
    page.goto(live_server.url + reverse("staff:login"))
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", "correct-horse-battery")
    with page.expect_navigation():
        page.locator("form.staff-form [type=submit]").click()


def sign_out(page) -> None:  # type: ignore[no-untyped-def]
    with page.expect_navigation():
        page.locator("nav.staff-nav form button").click()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_upload_approve_publish_and_roll_back_in_the_browser(browser_page, live_server, tmp_path):
    page = browser_page
    tax_list = CreditList.objects.get(code="TAX_MAJOR_VIOLATION")
    uploader = MembershipFactory(agency=tax_list.agency, role=Membership.Role.UPLOADER).user
    approver = MembershipFactory(agency=tax_list.agency, role=Membership.Role.APPROVER).user
    upload = tmp_path / "tax.csv"
    upload.write_bytes(
        "名称,统一社会信用代码,文书号,列入原因,决定日期\n"
        f"{NAME},{valid_uscc(4242)},税稽罚〔2025〕42号,虚开增值税专用发票,2025-03-01\n"
        "坏行公司,NOT-A-CODE,税稽罚〔2025〕43号,虚开,2025-03-01\n".encode("gb18030")
    )

    sign_in(page, live_server, uploader)
    page.goto(live_server.url + reverse("staff:batch-upload") + f"?credit_list={tax_list.code}")
    page.select_option("select[name=mode]", "incremental")
    page.set_input_files("input[name=file]", str(upload))
    with page.expect_navigation():
        page.locator("form.staff-form [type=submit]").click()
    batch = Batch.objects.get()
    assert batch.uploaded_by == uploader
    # No worker runs in the test: do what it would do; the page's polling then reloads itself.
    batches.process_batch(batch_id=batch.pk)
    page.wait_for_selector("table.batch-counts", timeout=15_000)
    assert "identifier" in page.locator("table.batch-problems").inner_text()
    assert page.locator("#publish").count() == 0  # the uploader cannot approve
    page.goto(live_server.url + reverse("staff:batch-rows", args=[batch.pk]) + "?show=add")
    assert NAME in page.content()
    sign_out(page)

    sign_in(page, live_server, approver)
    page.goto(live_server.url + reverse("staff:batch-detail", args=[batch.pk]))
    page.check("input[name=skip_invalid]")
    with page.expect_navigation():
        page.click("#publish")
    assert "Published" in page.content()
    assert Listing.objects.in_force().filter(subject__name=NAME, credit_list=tax_list).exists()
    page.goto(live_server.url + reverse("public:search") + f"?q={NAME}")
    assert NAME in page.content()

    page.goto(live_server.url + reverse("staff:batch-detail", args=[batch.pk]))
    with page.expect_navigation():
        page.click("#rollback")
    page.check("input[name=confirm]")
    with page.expect_navigation():
        page.locator("form.staff-form [type=submit]").click()
    assert "Rolled back" in page.content()
    assert not Listing.objects.in_force().filter(subject__name=NAME).exists()
    page.goto(live_server.url + reverse("public:search") + f"?q={NAME}")
    assert f"/subjects/{Listing.objects.get(subject__name=NAME).subject_id}/" not in page.content()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_big_batch_publishes_in_the_background_and_its_page_follows(browser_page, live_server, monkeypatch):
    from lists import tasks
    from lists.services.batches import queued
    from portal.celery import app

    monkeypatch.setattr(queued, "IN_REQUEST_ROWS", 0)  # as if it had a million rows
    page = browser_page
    tax_list = CreditList.objects.get(code="TAX_MAJOR_VIOLATION")
    approver = MembershipFactory(agency=tax_list.agency, role=Membership.Role.APPROVER).user
    payload = (
        f"名称,统一社会信用代码,文书号,列入原因,决定日期\n{NAME},{valid_uscc(4243)},税1号,x,2025-03-01\n"
    )
    batch = load(tax_list, payload.encode())

    sign_in(page, live_server, approver)
    page.goto(live_server.url + reverse("staff:batch-detail", args=[batch.pk]))
    with page.expect_navigation():
        page.click("#publish")
    assert page.locator("#batch-status").inner_text() == "Publishing"
    assert page.locator("#batch-progress progress").get_attribute("value") is None, "no share to show"
    assert not Listing.objects.in_force().filter(subject__name=NAME).exists()
    app.control.purge()  # no worker runs in the test: do what it would do
    tasks.publish_batch(batch.pk)
    page.wait_for_selector("#rollback", timeout=15_000)  # the page's polling reloaded it
    assert page.locator("#batch-status").inner_text() == "Published"
