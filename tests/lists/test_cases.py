"""Services for objections and repair applications: deadlines, eligibility, decisions, escalation."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from agencies.models import Agency, AuditEvent, Membership
from lists.models import Case, Change, CreditList, Holiday, Listing, Restriction
from lists.services import cases as svc
from lists.services import evidence as evidence_svc
from lists.services.measures import apply_measures
from lists.services.working_days import add_working_days
from tests.factories import ListingFactory, MembershipFactory

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.fixture(autouse=True)
def _private_media(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path / "media"


def repairable_listing(**kwargs) -> Listing:  # type: ignore[no-untyped-def]
    """Return a tax listing published 13 months ago, past its 12-month minimum, with measures."""
    decided = timezone.localdate() - dt.timedelta(days=400)
    listing = ListingFactory(decided_on=decided, **kwargs)
    apply_measures(listing_ids=[listing.pk])
    return listing


def file_objection(listing: Listing) -> svc.FiledCase:
    return svc.file_objection(
        listing=listing,
        applicant_name="张三",
        applicant_email="zhang@example.com",
        field="reason",
        grounds="The invoices were genuine.",
    )


def file_repair(listing: Listing) -> svc.FiledCase:
    return svc.file_repair_request(
        listing=listing, applicant_name="张三", applicant_email="zhang@example.com", statement="Tax paid."
    )


def approver_of(code: str):  # type: ignore[no-untyped-def]
    return MembershipFactory(agency=Agency.objects.get(code=code), role=Membership.Role.APPROVER).user


# Working days ------------------------------------------------------------------------------


def test_deadlines_skip_weekends():
    friday = dt.date(2026, 11, 20)
    assert add_working_days(friday, 1) == dt.date(2026, 11, 23)
    assert add_working_days(friday, 5) == dt.date(2026, 11, 27)


def test_deadlines_skip_holidays_across_a_weekend():
    Holiday.objects.create(date=dt.date(2026, 11, 24), name="Test holiday")
    friday = dt.date(2026, 11, 20)
    # Mon 23, (Tue 24 off), Wed 25, Thu 26, Fri 27, (weekend), Mon 30.
    assert add_working_days(friday, 5) == dt.date(2026, 11, 30)


def test_make_up_working_days_count():
    Holiday.objects.create(date=dt.date(2026, 11, 24), name="Test holiday")
    Holiday.objects.create(date=dt.date(2026, 11, 28), name="调休", is_working_day=True)
    assert add_working_days(dt.date(2026, 11, 20), 5) == dt.date(2026, 11, 28)


def test_spring_festival_week_is_skipped():
    for offset in range(7):
        Holiday.objects.create(date=dt.date(2026, 2, 15) + dt.timedelta(days=offset), name="春节")
    # Fri 13 Feb; 15–21 off, so the first working day is Mon 23 Feb (22 is a Sunday).
    assert add_working_days(dt.date(2026, 2, 13), 1) == dt.date(2026, 2, 16 + 7)


# Filing ------------------------------------------------------------------------------------


def test_objection_marks_the_listing_disputed_with_a_feed_entry(mailoutbox):
    listing = ListingFactory()
    filed = file_objection(listing)
    listing.refresh_from_db()
    assert listing.status == Listing.Status.DISPUTED
    assert listing.is_in_force
    change = Change.objects.filter(listing=listing).latest("seq")
    assert (change.op, change.reason, change.data["status"]) == ("modify", "objection", "disputed")
    assert filed.case.number.startswith(f"YY-{timezone.localdate().year}-")
    assert filed.case.due_on == add_working_days(timezone.localdate(), 5)
    assert filed.case.check_access_code(filed.access_code)
    assert filed.access_code not in filed.case.access_code_hash
    assert mailoutbox[0].to == ["zhang@example.com"]
    assert filed.case.number in mailoutbox[0].body
    assert filed.access_code not in mailoutbox[0].body


def test_objection_leaves_the_listing_alone_when_the_list_does_not_mark_disputes():
    CreditList.objects.filter(code="TAX_MAJOR_VIOLATION").update(marks_disputed=False)
    listing = ListingFactory()
    file_objection(listing)
    listing.refresh_from_db()
    assert listing.status == Listing.Status.ACTIVE
    assert not Change.objects.filter(listing=listing).exists()


def test_court_defaulter_repair_is_refused():
    listing = ListingFactory(
        credit_list=CreditList.objects.get(code="SPC_DEFAULTER"),
        decided_on=timezone.localdate() - dt.timedelta(days=700),
    )
    with pytest.raises(svc.CaseRefused, match="court defaulter listings end when the court removes them"):
        file_repair(listing)
    assert not Case.objects.exists()


def test_repair_before_the_minimum_period_is_refused_with_the_date():
    decided = timezone.localdate() - dt.timedelta(days=30)
    listing = ListingFactory(decided_on=decided)
    possible = (
        decided.replace(year=decided.year + 1) if not (decided.month == 2 and decided.day == 29) else None
    )
    with pytest.raises(svc.CaseRefused, match="minimum publication period") as refused:
        file_repair(listing)
    if possible:
        assert possible.isoformat() in str(refused.value)


def test_repair_minimum_period_follows_severity():
    credit_list = CreditList.objects.get(code="ADMIN_PENALTY")
    four_months_ago = timezone.localdate() - dt.timedelta(days=125)
    general = ListingFactory(credit_list=credit_list, severity="general", decided_on=four_months_ago)
    serious = ListingFactory(credit_list=credit_list, severity="serious", decided_on=four_months_ago)
    assert svc.repair_refusal(general) is None
    assert "minimum publication period" in (svc.repair_refusal(serious) or "")


def test_second_open_repair_on_the_same_listing_is_refused():
    listing = repairable_listing()
    file_repair(listing)
    with pytest.raises(svc.CaseRefused, match="already open"):
        file_repair(listing)


# Evidence ----------------------------------------------------------------------------------


def test_evidence_is_stored_privately_under_a_random_name(settings):
    case = file_objection(ListingFactory()).case
    upload = SimpleUploadedFile("../../etc/收据 <1>.pdf", PDF, content_type="text/html")
    evidence = evidence_svc.add_evidence(case=case, upload=upload)
    assert evidence.content_type == "application/pdf"
    assert evidence.original_name == "收据_1.pdf"
    assert evidence.file.name.startswith(f"evidence/{case.pk}/")
    assert "收据" not in evidence.file.name
    assert evidence.file.path.startswith(str(settings.MEDIA_ROOT))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("fake.pdf", b"<html><script>alert(1)</script></html>", "only PDF, JPEG and PNG"),
        ("empty.png", b"", "empty"),
        ("big.pdf", b"%PDF-" + b"0" * evidence_svc.EVIDENCE_MAX_BYTES, "at most 10 MB"),
    ],
)
def test_evidence_is_refused_by_type_and_size(name, content, message):
    case = file_objection(ListingFactory()).case
    with pytest.raises(svc.CaseRefused, match=message):
        evidence_svc.add_evidence(case=case, upload=SimpleUploadedFile(name, content))


def test_png_evidence_is_recognised_by_its_magic_bytes():
    case = file_objection(ListingFactory()).case
    evidence = evidence_svc.add_evidence(case=case, upload=SimpleUploadedFile("scan.dat", PNG))
    assert (evidence.content_type, evidence.original_name) == ("image/png", "scan.png")


# Decisions ---------------------------------------------------------------------------------


def test_repair_approval_ends_the_listing_lifts_measures_and_tombstones_the_feed(mailoutbox):
    listing = repairable_listing()
    assert Restriction.objects.in_force().filter(listing=listing).exists()
    case = file_repair(listing).case
    approver = approver_of("sta")

    svc.decide_repair(
        case=case, decision="approve", reason="Paid in full", actor=approver, ip_address="10.0.0.9"
    )

    listing.refresh_from_db()
    assert listing.status == Listing.Status.REPAIRED and listing.ended_at is not None
    assert not Listing.objects.in_force().filter(pk=listing.pk).exists()
    assert not Restriction.objects.in_force().filter(listing=listing).exists()
    assert set(Restriction.objects.filter(listing=listing).values_list("lifted_reason", flat=True)) == {
        "repaired"
    }
    tombstone = Change.objects.filter(listing=listing).latest("seq")
    assert (tombstone.op, tombstone.reason) == ("remove", "repair")
    event = AuditEvent.objects.get(action="case.repair.decided")
    assert (event.actor, event.ip_address, event.detail["decision"]) == (approver, "10.0.0.9", "approve")
    case.refresh_from_db()
    assert (case.status, case.decided_by) == (Case.Status.DECIDED, approver)
    assert "Paid in full" in mailoutbox[-1].body


def test_a_repaired_listing_keeps_the_time_its_lists_last_snapshot_confirmed_it():
    listing = repairable_listing(last_seen_at=timezone.now() - dt.timedelta(days=90))
    confirmed = timezone.now() - dt.timedelta(days=1)
    CreditList.objects.filter(pk=listing.credit_list_id).update(last_snapshot_at=confirmed)
    case = file_repair(listing).case
    svc.decide_repair(case=case, decision="approve", reason="Paid in full", actor=approver_of("sta"))
    CreditList.objects.filter(pk=listing.credit_list_id).update(last_snapshot_at=timezone.now())
    listing = Listing.objects.get(pk=listing.pk)
    assert listing.status == Listing.Status.REPAIRED and listing.seen_at == confirmed


def test_refused_repair_leaves_the_listing_in_force():
    listing = repairable_listing()
    case = file_repair(listing).case
    svc.decide_repair(case=case, decision="refuse", reason="Unpaid", actor=approver_of("sta"))
    listing.refresh_from_db()
    assert listing.status == Listing.Status.ACTIVE
    assert Restriction.objects.in_force().filter(listing=listing).exists()


def test_rejected_objection_returns_the_listing_to_active():
    listing = ListingFactory()
    case = file_objection(listing).case
    svc.decide_objection(case=case, decision="reject", reason="Record is right", actor=approver_of("sta"))
    listing.refresh_from_db()
    assert listing.status == Listing.Status.ACTIVE
    change = Change.objects.filter(listing=listing).latest("seq")
    assert (change.op, change.data["status"]) == ("modify", "active")
    assert AuditEvent.objects.filter(action="case.objection.decided", target_id=str(case.pk)).exists()


def test_listing_stays_disputed_while_another_objection_is_open():
    listing = ListingFactory()
    first = file_objection(listing).case
    file_objection(listing)
    svc.decide_objection(case=first, decision="uphold", reason="Correct", actor=approver_of("sta"))
    listing.refresh_from_db()
    assert listing.status == Listing.Status.DISPUTED


def test_correction_without_new_values_revokes_the_listing():
    listing = repairable_listing()
    case = file_objection(listing).case
    svc.decide_objection(case=case, decision="correct", reason="Wrong company", actor=approver_of("sta"))
    listing.refresh_from_db()
    assert listing.status == Listing.Status.REVOKED
    assert not Restriction.objects.in_force().filter(listing=listing).exists()
    change = Change.objects.filter(listing=listing).latest("seq")
    assert (change.op, change.reason) == ("remove", "correct")


def test_correction_with_a_new_value_updates_the_record():
    listing = ListingFactory()
    case = file_objection(listing).case
    svc.decide_objection(
        case=case,
        decision="correct",
        reason="Typo",
        actor=approver_of("sta"),
        corrections={"reason": "逃避追缴欠税"},
    )
    listing.refresh_from_db()
    assert (listing.status, listing.reason) == (Listing.Status.ACTIVE, "逃避追缴欠税")
    change = Change.objects.filter(listing=listing).latest("seq")
    assert (change.op, change.reason, change.data["reason"]) == ("modify", "correct", "逃避追缴欠税")


def test_a_case_is_decided_only_once():
    case = file_repair(repairable_listing()).case
    approver = approver_of("sta")
    svc.decide_repair(case=case, decision="refuse", reason="No", actor=approver)
    with pytest.raises(svc.CaseRefused, match="already been decided"):
        svc.decide_repair(case=case, decision="approve", reason="Yes", actor=approver)


def test_decision_must_fit_the_kind_of_case():
    case = file_objection(ListingFactory()).case
    with pytest.raises(svc.CaseRefused):
        svc.decide_objection(case=case, decision="approve", reason="x", actor=approver_of("sta"))


# Escalation --------------------------------------------------------------------------------


def test_overdue_cases_are_escalated_once_with_mail_and_audit(mailoutbox):
    admin = MembershipFactory(agency=Agency.objects.get(code="sta"), role=Membership.Role.ADMIN).user
    late = file_objection(ListingFactory()).case
    on_time = file_objection(ListingFactory()).case
    Case.objects.filter(pk=late.pk).update(due_on=timezone.localdate() - dt.timedelta(days=1))
    mailoutbox.clear()

    assert svc.escalate_overdue_cases() == 1

    late.refresh_from_db()
    on_time.refresh_from_db()
    assert late.escalated_at is not None and on_time.escalated_at is None
    assert [m.to for m in mailoutbox] == [[admin.email]]
    assert late.number in mailoutbox[0].body
    event = AuditEvent.objects.get(action="case.objection.escalated")
    assert event.target_id == str(late.pk)
    assert svc.escalate_overdue_cases() == 0
    assert len(mailoutbox) == 1


def test_escalation_command_and_task_call_the_service():
    from django.core.management import call_command

    from lists.tasks import escalate_overdue_cases

    case = file_objection(ListingFactory()).case
    call_command("escalate_overdue_cases", "--today", (case.due_on + dt.timedelta(days=1)).isoformat())
    case.refresh_from_db()
    assert case.escalated_at is not None
    assert escalate_overdue_cases() == 0


def test_an_objection_to_an_ended_listing_cannot_correct_it():
    listing = repairable_listing()
    objection = file_objection(listing).case
    repair = file_repair(listing).case
    approver = approver_of("sta")
    svc.decide_repair(case=repair, decision="approve", reason="Paid", actor=approver)
    with pytest.raises(svc.CaseRefused, match="already ended"):
        svc.decide_objection(case=objection, decision="correct", reason="x", actor=approver)
    svc.decide_objection(case=objection, decision="uphold", reason="Moot", actor=approver)
    listing.refresh_from_db()
    assert listing.status == Listing.Status.REPAIRED
