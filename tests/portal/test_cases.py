"""Objection and repair pages, public and staff, walked through the HTTP client."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from agencies.models import Agency, AuditEvent, Membership
from lists.models import Case, Change, Holiday, Listing, Restriction
from lists.services.measures import apply_measures
from portal.cases.views import TRACK_LIMIT_PER_IP
from tests.factories import ListingFactory, MembershipFactory

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture(autouse=True)
def _private_media(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _login_url(settings):  # type: ignore[no-untyped-def]
    # The staff login page belongs to another part of the staff area; fall back until it exists.
    try:
        reverse("staff:login")
    except NoReverseMatch:
        settings.LOGIN_URL = "/admin/login/"


def staff_client(agency_code: str, role: str = Membership.Role.APPROVER) -> tuple[Client, object]:
    user = MembershipFactory(agency=Agency.objects.get(code=agency_code), role=role).user
    client = Client()
    client.force_login(user)
    return client, user


def pdf(name: str = "receipt.pdf"):  # type: ignore[no-untyped-def]
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, PDF, content_type="application/pdf")


def file_through_page(client: Client, kind: str, listing: Listing, **extra: object) -> tuple[str, str]:
    """Submit the public form and return (case number, access code) read off the confirmation."""
    data = {"applicant_name": "李四", "applicant_email": "li@example.com", "evidence": [pdf()], **extra}
    response = client.post(reverse(f"cases:{kind}-new", args=[listing.pk]), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"] == reverse("cases:filed")
    page = client.get(reverse("cases:filed")).content.decode()
    number = re.search(r'id="case-number">([^<]+)<', page).group(1)
    code = re.search(r'id="access-code">([^<]+)<', page).group(1)
    return number, code


def open_case(number: str, code: str) -> Client:
    client = Client()
    response = client.post(reverse("cases:track"), {"number": number, "access_code": code})
    assert response.status_code == 302
    return client


def repairable_listing() -> Listing:
    listing = ListingFactory(decided_on=timezone.localdate() - dt.timedelta(days=400))
    apply_measures(listing_ids=[listing.pk])
    return listing


def test_an_objection_walks_from_filing_to_decision_through_the_pages(mailoutbox):
    listing = ListingFactory()
    public = Client()
    assert public.get(reverse("cases:objection-new", args=[listing.pk])).status_code == 200

    number, code = file_through_page(public, "objection", listing, field="reason", grounds="Genuine invoices")
    # The code is shown once: the confirmation page does not come back.
    assert public.get(reverse("cases:filed")).status_code == 302
    listing.refresh_from_db()
    assert listing.status == Listing.Status.DISPUTED

    applicant = open_case(number, code)
    page = applicant.get(reverse("cases:case-detail", args=[number])).content.decode()
    assert "receipt.pdf" in page and "已提交 Filed" in page

    staff, user = staff_client("sta")
    case = Case.objects.get(number=number)
    assert number in staff.get(reverse("staff:case-list")).content.decode()
    assert staff.get(reverse("staff:case-detail", args=[case.pk])).status_code == 200
    evidence = case.evidence.get()
    download = staff.get(reverse("staff:case-evidence", args=[case.pk, evidence.pk]))
    assert download.status_code == 200 and b"".join(download.streaming_content) == PDF
    assert download["Content-Disposition"].startswith("attachment")
    assert staff.post(reverse("staff:case-review", args=[case.pk])).status_code == 302
    response = staff.post(
        reverse("staff:case-decide", args=[case.pk]),
        {"decision": "reject", "reason": "The decision stands", "corrected_value": ""},
        REMOTE_ADDR="10.1.2.3",
    )
    assert response.status_code == 302

    listing.refresh_from_db()
    assert listing.status == Listing.Status.ACTIVE
    event = AuditEvent.objects.get(action="case.objection.decided")
    assert (event.actor, event.ip_address) == (user, "10.1.2.3")
    page = applicant.get(reverse("cases:case-detail", args=[number])).content.decode()
    assert "The decision stands" in page and "驳回" in page
    assert [m.to for m in mailoutbox] == [["li@example.com"], ["li@example.com"]]


def test_an_objection_correcting_a_field_changes_the_record_and_the_feed():
    listing = ListingFactory()
    number, _ = file_through_page(Client(), "objection", listing, field="reference", grounds="Wrong number")
    staff, _ = staff_client("sta")
    case = Case.objects.get(number=number)
    staff.post(
        reverse("staff:case-decide", args=[case.pk]),
        {"decision": "correct", "reason": "Typo", "corrected_value": "税稽罚〔2025〕1号"},
    )
    listing.refresh_from_db()
    assert listing.reference == "税稽罚〔2025〕1号"
    assert Change.objects.filter(listing=listing).latest("seq").data["reference"] == "税稽罚〔2025〕1号"


def test_a_repair_walks_from_filing_to_approval_and_the_listing_leaves_public_view():
    listing = repairable_listing()
    number, code = file_through_page(
        Client(), "repair", listing, statement="All tax and fines paid", commitment="on"
    )
    staff, _ = staff_client("sta")
    case = Case.objects.get(number=number)
    assert case.kind == Case.Kind.REPAIR and case.number.startswith("XF-")
    response = staff.post(
        reverse("staff:case-decide", args=[case.pk]), {"decision": "approve", "reason": "Paid"}
    )
    assert response.status_code == 302

    listing.refresh_from_db()
    assert listing.status == Listing.Status.REPAIRED
    assert not Restriction.objects.in_force().filter(listing=listing).exists()
    tombstone = Change.objects.filter(listing=listing).latest("seq")
    assert (tombstone.op, tombstone.reason) == ("remove", "repair")
    # Public pages no longer offer the record.
    assert Client().get(reverse("cases:objection-new", args=[listing.pk])).status_code == 404
    page = open_case(number, code).get(reverse("cases:case-detail", args=[number])).content.decode()
    assert "准予修复" in page


def test_the_deadline_skips_the_weekend_and_holidays():
    today = timezone.localdate()
    first_weekday = next(
        today + dt.timedelta(days=d) for d in range(1, 8) if (today + dt.timedelta(days=d)).weekday() < 5
    )
    Holiday.objects.create(date=first_weekday, name="Test holiday")
    expected, left = today, 5
    while left:
        expected += dt.timedelta(days=1)
        if expected.weekday() < 5 and expected != first_weekday:
            left -= 1

    number, _ = file_through_page(Client(), "objection", ListingFactory(), field="reason", grounds="x")

    case = Case.objects.get(number=number)
    assert case.due_on == expected
    assert (case.due_on - today).days >= 8  # at least one weekend and the holiday in between


def test_court_defaulter_repair_page_refuses_with_the_reason():
    from lists.models import CreditList

    listing = ListingFactory(credit_list=CreditList.objects.get(code="SPC_DEFAULTER"))
    response = Client().post(
        reverse("cases:repair-new", args=[listing.pk]),
        {"applicant_name": "王五", "applicant_email": "w@example.com", "statement": "x", "commitment": "on"},
    )
    assert "court defaulter listings end when the court removes them" in response.content.decode()
    assert not Case.objects.exists()


def test_repair_page_shows_when_the_minimum_period_ends():
    listing = ListingFactory(decided_on=timezone.localdate() - dt.timedelta(days=10))
    page = Client().get(reverse("cases:repair-new", args=[listing.pk])).content.decode()
    assert "repair is possible from" in page
    assert 'name="statement"' not in page


def test_evidence_of_the_wrong_type_is_refused_on_the_form():
    from django.core.files.uploadedfile import SimpleUploadedFile

    listing = ListingFactory()
    fake = SimpleUploadedFile("invoice.pdf", b"MZ\x90\x00 not a pdf", content_type="application/pdf")
    response = Client().post(
        reverse("cases:objection-new", args=[listing.pk]),
        {
            "applicant_name": "x",
            "applicant_email": "x@example.com",
            "field": "reason",
            "grounds": "x",
            "evidence": [fake],
        },
    )
    assert response.status_code == 200
    assert "only PDF, JPEG and PNG" in response.content.decode()
    assert not Case.objects.exists()


def test_applicant_adds_documents_with_the_access_code():
    number, code = file_through_page(Client(), "objection", ListingFactory(), field="reason", grounds="x")
    applicant = open_case(number, code)
    response = applicant.post(
        reverse("cases:case-evidence-add", args=[number]), {"evidence": [pdf("more.pdf")]}
    )
    assert response.status_code == 302
    case = Case.objects.get(number=number)
    assert sorted(case.evidence.values_list("original_name", flat=True)) == ["more.pdf", "receipt.pdf"]
    item = case.evidence.get(original_name="more.pdf")
    download = applicant.get(reverse("cases:case-evidence", args=[number, item.pk]))
    assert download.status_code == 200


# Access control ----------------------------------------------------------------------------


def test_only_the_handling_agency_and_the_applicant_can_read_a_case():
    number, code = file_through_page(Client(), "objection", ListingFactory(), field="reason", grounds="x")
    case = Case.objects.get(number=number)
    evidence = case.evidence.get()
    detail = reverse("staff:case-detail", args=[case.pk])
    staff_file = reverse("staff:case-evidence", args=[case.pk, evidence.pk])
    public_page = reverse("cases:case-detail", args=[number])
    public_file = reverse("cases:case-evidence", args=[number, evidence.pk])

    other, _ = staff_client("samr", Membership.Role.ADMIN)
    for url in (detail, staff_file):
        assert other.get(url).status_code == 404
    assert (
        other.post(
            reverse("staff:case-decide", args=[case.pk]), {"decision": "reject", "reason": "x"}
        ).status_code
        == 404
    )
    assert number not in other.get(reverse("staff:case-list")).content.decode()

    anonymous = Client()
    assert anonymous.get(detail).status_code == 302
    assert anonymous.get(staff_file).status_code == 302
    assert anonymous.get(public_page)["Location"] == reverse("cases:track")
    assert anonymous.get(public_file).status_code == 404

    uploader, _ = staff_client("sta", Membership.Role.UPLOADER)
    assert uploader.get(detail).status_code == 200
    assert (
        uploader.post(
            reverse("staff:case-decide", args=[case.pk]), {"decision": "reject", "reason": "x"}
        ).status_code
        == 403
    )
    case.refresh_from_db()
    assert case.is_open


def test_a_wrong_access_code_gets_the_same_generic_error_as_an_unknown_case():
    number, code = file_through_page(Client(), "objection", ListingFactory(), field="reason", grounds="x")
    client = Client()
    wrong = client.post(reverse("cases:track"), {"number": number, "access_code": "AAAA-BBBB-CCCC"})
    unknown = client.post(reverse("cases:track"), {"number": "YY-2000-999999", "access_code": code})
    assert wrong.status_code == unknown.status_code == 403
    assert "案件编号或查询码不正确" in wrong.content.decode()
    assert "案件编号或查询码不正确" in unknown.content.decode()
    assert client.get(reverse("cases:case-detail", args=[number]))["Location"] == reverse("cases:track")


def test_access_code_guessing_is_rate_limited():
    number, code = file_through_page(Client(), "objection", ListingFactory(), field="reason", grounds="x")
    client = Client()
    for _ in range(TRACK_LIMIT_PER_IP):
        client.post(reverse("cases:track"), {"number": number, "access_code": "WRONG-CODE"})
    blocked = client.post(reverse("cases:track"), {"number": number, "access_code": code})
    assert blocked.status_code == 429


def test_forms_need_a_csrf_token():
    listing = ListingFactory()
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        reverse("cases:objection-new", args=[listing.pk]),
        {"applicant_name": "x", "applicant_email": "x@example.com", "field": "reason", "grounds": "x"},
    )
    assert response.status_code == 403
    assert 'name="csrfmiddlewaretoken"' in client.get(reverse("cases:track")).content.decode()


def test_the_queue_highlights_overdue_cases():
    number, _ = file_through_page(Client(), "objection", ListingFactory(), field="reason", grounds="x")
    Case.objects.filter(number=number).update(due_on=timezone.localdate() - dt.timedelta(days=2))
    staff, _ = staff_client("sta")
    page = staff.get(reverse("staff:case-list")).content.decode()
    assert 'class="overdue"' in page and "逾期" in page


def test_staff_evidence_downloads_are_audited():
    number, _ = file_through_page(Client(), "objection", ListingFactory(), field="reason", grounds="x")
    case = Case.objects.get(number=number)
    staff, user = staff_client("sta", Membership.Role.UPLOADER)
    staff.get(reverse("staff:case-evidence", args=[case.pk, case.evidence.get().pk]))
    event = AuditEvent.objects.get(action="case.evidence.downloaded")
    assert (event.actor, event.detail["number"]) == (user, number)


def test_filing_is_rate_limited_per_address(monkeypatch):
    monkeypatch.setattr("portal.cases.views.FILING_LIMIT_PER_IP", 2)
    client = Client()
    for _ in range(2):
        file_through_page(client, "objection", ListingFactory(), field="reason", grounds="x")
    listing = ListingFactory()
    response = client.post(
        reverse("cases:objection-new", args=[listing.pk]),
        {"applicant_name": "x", "applicant_email": "x@example.com", "field": "reason", "grounds": "x"},
    )
    assert response.status_code == 200 and "Too many applications" in response.content.decode()
    assert Case.objects.count() == 2


def test_documents_cannot_be_added_after_the_decision():
    number, code = file_through_page(Client(), "objection", ListingFactory(), field="reason", grounds="x")
    staff, _ = staff_client("sta")
    case = Case.objects.get(number=number)
    staff.post(reverse("staff:case-decide", args=[case.pk]), {"decision": "uphold", "reason": "Right"})
    applicant = open_case(number, code)
    response = applicant.post(
        reverse("cases:case-evidence-add", args=[number]), {"evidence": [pdf("late.pdf")]}
    )
    assert response.status_code == 400
    assert case.evidence.count() == 1


def test_the_queue_can_be_filtered_by_agency_and_shows_decided_cases():
    number, _ = file_through_page(Client(), "objection", ListingFactory(), field="reason", grounds="x")
    staff, _ = staff_client("sta")
    assert number in staff.get(reverse("staff:case-list"), {"agency": "sta"}).content.decode()
    assert number not in staff.get(reverse("staff:case-list"), {"state": "decided"}).content.decode()


def test_evidence_has_no_public_url():
    number, _ = file_through_page(Client(), "objection", ListingFactory(), field="reason", grounds="x")
    evidence = Case.objects.get(number=number).evidence.get()
    for prefix in ("/media/", "/static/", "/"):
        assert Client().get(prefix + evidence.file.name).status_code == 404


def test_an_invalid_correction_is_refused_on_the_decision_form():
    listing = ListingFactory()
    number, _ = file_through_page(Client(), "objection", listing, field="expires_on", grounds="Too long")
    staff, _ = staff_client("sta")
    case = Case.objects.get(number=number)
    response = staff.post(
        reverse("staff:case-decide", args=[case.pk]),
        {"decision": "correct", "reason": "Shorter", "corrected_value": "not a date"},
    )
    assert response.status_code == 400
    case.refresh_from_db()
    listing.refresh_from_db()
    assert case.is_open and listing.status == Listing.Status.DISPUTED


def test_the_queue_query_count_does_not_grow_with_cases(django_assert_max_num_queries):
    for _ in range(3):
        file_through_page(Client(), "objection", ListingFactory(), field="reason", grounds="x")
    staff, _ = staff_client("sta")
    with django_assert_max_num_queries(10):
        staff.get(reverse("staff:case-list"))
