"""Credit reports: the print page, the PDF, and the verification page."""

from __future__ import annotations

import io
import re

import pytest
from django.urls import reverse
from pypdf import PdfReader

from lists.models import CreditList, CreditReport
from lists.services.measures import apply_measures
from tests.factories import ListingFactory, SubjectFactory

pytestmark = pytest.mark.django_db


def _subject_with_listing():  # type: ignore[no-untyped-def]
    subject = SubjectFactory(name="深圳市报告测试科技有限公司")
    ListingFactory(subject=subject, reference="税稽罚〔2025〕7号")
    apply_measures()
    return subject


def test_report_pdf_is_a_dated_pdf_with_the_subject_and_its_records(client):
    subject = _subject_with_listing()
    response = client.get(reverse("public:report-pdf", args=[subject.pk]), HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    report = CreditReport.objects.get(subject=subject)
    assert report.number in response["Content-Disposition"]
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    compact = re.sub(r"\s+", "", text)
    assert "深圳市报告测试科技有限公司" in compact
    assert "税稽罚〔2025〕7号" in compact
    assert report.number in compact
    assert report.content_sha256 in compact


def test_report_page_is_numbered_and_links_to_its_verification(client):
    subject = _subject_with_listing()
    response = client.get(reverse("public:report-page", args=[subject.pk]))
    assert response.status_code == 200
    report = CreditReport.objects.get(subject=subject)
    body = response.content.decode()
    assert report.number in body and report.content_sha256 in body
    assert reverse("public:report-verify") in body
    assert report.language in {"zh-hans", "en"}


def test_verification_confirms_the_hash_and_rejects_a_wrong_one(client):
    subject = _subject_with_listing()
    client.get(reverse("public:report-page", args=[subject.pk]))
    report = CreditReport.objects.get(subject=subject)
    url = reverse("public:report-verify")
    good = client.get(url, {"number": report.number.lower(), "sha256": report.content_sha256.upper()})
    assert good.context["verification"].hash_matches
    assert not good.context["verification"].records_changed
    wrong = client.get(url, {"number": report.number, "sha256": "0" * 64})
    assert wrong.context["verification"].report == report
    assert not wrong.context["verification"].hash_matches
    unknown = client.get(url, {"number": "XY20990101DEADBEEF", "sha256": report.content_sha256})
    assert unknown.context["verification"].report is None
    malformed = client.get(url, {"number": report.number, "sha256": "not a hash"})
    assert malformed.context["verification"] is None


def test_verification_says_when_records_changed_since_the_report(client):
    subject = _subject_with_listing()
    client.get(reverse("public:report-pdf", args=[subject.pk]))
    report = CreditReport.objects.get(subject=subject)
    ListingFactory(subject=subject, credit_list=CreditList.objects.get(code="SPC_DEFAULTER"))
    response = client.get(
        reverse("public:report-verify"), {"number": report.number, "sha256": report.content_sha256}
    )
    assert response.context["verification"].hash_matches
    assert response.context["verification"].records_changed


def test_repeating_a_report_keeps_its_number_until_the_records_change(client):
    subject = _subject_with_listing()
    page, pdf = (
        reverse("public:report-page", args=[subject.pk]),
        reverse("public:report-pdf", args=[subject.pk]),
    )
    for url in (page, page, pdf):
        client.get(url, HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert CreditReport.objects.filter(subject=subject).count() == 1
    ListingFactory(subject=subject, credit_list=CreditList.objects.get(code="SPC_DEFAULTER"))
    client.get(page, HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert CreditReport.objects.filter(subject=subject).count() == 2
