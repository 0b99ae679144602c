"""The public site in a real browser: search, open a subject, switch language, download a report."""

from __future__ import annotations

import pytest

from lists.services.measures import apply_measures
from tests.factories import ListingFactory, SubjectFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_search_open_subject_switch_language_and_download_report(live_server, browser_page, tmp_path):
    subject = SubjectFactory(
        name="北京浏览器测试科技有限公司", name_en="Beijing Browser Test Technology Co., Ltd."
    )
    ListingFactory(subject=subject, reference="税稽罚〔2025〕99号")
    apply_measures()
    page = browser_page

    page.goto(live_server.url + "/")
    page.fill("input[name=q]", "浏览器测试")
    page.press("input[name=q]", "Enter")
    page.wait_for_url("**/search/?q=*")
    page.click("text=北京浏览器测试科技有限公司")
    page.wait_for_url(f"**/subjects/{subject.pk}/")
    assert page.locator("h1").inner_text() == "北京浏览器测试科技有限公司"
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.is_visible("text=有效记录")
    assert page.is_visible("text=税稽罚〔2025〕99号")

    page.click("button[value=en]")
    page.wait_for_selector("text=Records in force")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.url.endswith(f"/subjects/{subject.pk}/")

    with page.expect_download() as download_info:
        page.click("text=Download report (PDF)")
    download = download_info.value
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    assert download.suggested_filename.startswith("credit-report-XY")
    assert target.read_bytes().startswith(b"%PDF-")
