"""Due process: file, decide and escalate objections and repair applications.

Every write with a side effect on a listing (disputed, corrected, revoked, repaired) happens
here, together with its change-feed entry and restriction update, in one transaction. E-mails
are sent after the transaction commits so a failing mail server never undoes a decision.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from agencies.models import Membership
from agencies.services import record_event

from ..models import Case, CaseEvent, Listing
from .feed import record_changes
from .measures import apply_measures
from .working_days import add_working_days

# Fields an agency may correct on an upheld-in-part objection; the rest needs a revocation.
CORRECTABLE_FIELDS = {"reference", "reason", "severity", "decided_on", "expires_on"}


class CaseRefused(ValueError):
    """The request cannot be accepted; the message says why, for the applicant."""


@dataclass
class FiledCase:
    case: Case
    access_code: str


# Filing ------------------------------------------------------------------------------------


def repair_possible_from(listing: Listing) -> dt.date | None:
    """Return the first day a repair may be applied for, or None when the list allows none."""
    credit_list = listing.credit_list
    if not credit_list.is_repairable:
        return None
    rules = credit_list.repair_min_months or {}
    months = rules.get(listing.severity, rules.get("", 0))
    start = listing.published_on or listing.decided_on or listing.first_seen_at.date()
    return start + relativedelta(months=int(months))


def repair_refusal(listing: Listing, *, today: dt.date | None = None) -> str | None:
    """Return why a repair application for the listing cannot be filed, or None if it can."""
    today = today or timezone.localdate()
    if not listing.is_in_force:
        return "this listing is no longer in force"
    possible_from = repair_possible_from(listing)
    if possible_from is None:
        if listing.credit_list.code.startswith("SPC_"):
            return "court defaulter listings end when the court removes them"
        return "listings on this list end by the agency's removal, not by repair"
    if today < possible_from:
        return (
            f"the minimum publication period has not passed: repair is possible from {possible_from:%Y-%m-%d}"
        )
    if Case.objects.open().filter(listing=listing, kind=Case.Kind.REPAIR).exists():
        return "a repair application for this listing is already open"
    return None


def file_objection(
    *, listing: Listing, applicant_name: str, applicant_email: str, field: str, grounds: str
) -> FiledCase:
    """Open an objection to a listing; mark the listing under review where its list says so."""
    if not listing.is_in_force:
        raise CaseRefused("this listing is no longer in force")
    with transaction.atomic():
        listing = Listing.objects.select_for_update().select_related("credit_list").get(pk=listing.pk)
        if not listing.is_in_force:  # ended between the first check and the lock
            raise CaseRefused("this listing is no longer in force")
        filed = _create_case(
            listing,
            kind=Case.Kind.OBJECTION,
            applicant_name=applicant_name,
            applicant_email=applicant_email,
            field=field,
            grounds=grounds,
        )
        if listing.credit_list.marks_disputed and listing.status == Listing.Status.ACTIVE:
            _set_listing_status(listing, Listing.Status.DISPUTED, reason="objection")
    _notify_applicant(filed.case, "filed")
    return filed


def file_repair_request(
    *, listing: Listing, applicant_name: str, applicant_email: str, statement: str
) -> FiledCase:
    """Open an application to repair a listing, if the list's rules allow one yet."""
    refusal = repair_refusal(listing)
    if refusal:
        raise CaseRefused(refusal)
    with transaction.atomic():
        listing = Listing.objects.select_for_update().select_related("credit_list").get(pk=listing.pk)
        filed = _create_case(
            listing,
            kind=Case.Kind.REPAIR,
            applicant_name=applicant_name,
            applicant_email=applicant_email,
            field="",
            grounds=statement,
        )
    _notify_applicant(filed.case, "filed")
    return filed


def _create_case(listing: Listing, *, kind: str, **fields: Any) -> FiledCase:
    now = timezone.now()
    days = (
        listing.credit_list.objection_days if kind == Case.Kind.OBJECTION else listing.credit_list.repair_days
    )
    code = Case.new_access_code()
    case = Case.objects.create(
        kind=kind,
        # A placeholder until the primary key exists; the number is derived from it below.
        number=f"pending-{uuid.uuid4().hex[:24]}",
        access_code_hash=Case.hash_access_code(code),
        listing=listing,
        agency_id=listing.credit_list.agency_id,
        filed_at=now,
        due_on=add_working_days(timezone.localdate(now), days),
        **fields,
    )
    case.number = f"{Case.NUMBER_PREFIX[case.kind]}-{timezone.localdate(now).year}-{case.pk:06d}"
    case.save(update_fields=["number"])
    CaseEvent.objects.create(case=case, action="filed")
    record_event(action=f"case.{kind}.filed", actor_label="public", target=case, agency=case.agency)
    return FiledCase(case=case, access_code=code)


# Evidence ----------------------------------------------------------------------------------


# Decisions ---------------------------------------------------------------------------------


def start_review(*, case: Case, actor: Any, ip_address: str | None = None) -> Case:
    """Mark a filed case as under review by the agency."""
    with transaction.atomic():
        case = Case.objects.select_for_update().get(pk=case.pk)
        if case.status != Case.Status.FILED:
            return case
        case.status = Case.Status.UNDER_REVIEW
        case.save(update_fields=["status"])
        CaseEvent.objects.create(case=case, action="under_review", actor=actor)
        record_event(
            action=f"case.{case.kind}.review",
            actor=actor,
            target=case,
            agency=case.agency,
            ip_address=ip_address,
        )
    return case


def decide_objection(
    *,
    case: Case,
    decision: str,
    reason: str,
    actor: Any,
    ip_address: str | None = None,
    corrections: dict[str, Any] | None = None,
) -> Case:
    """Decide an objection: uphold or reject keeps the record, correct fixes or revokes it.

    `corrections` maps listing fields to their corrected values; without any, a correction
    revokes the listing (the record should never have been published).
    """
    if decision not in Case.OBJECTION_DECISIONS:
        raise CaseRefused(f"not a decision on an objection: {decision}")
    unknown = set(corrections or {}) - CORRECTABLE_FIELDS
    if unknown:
        raise CaseRefused(f"these fields cannot be corrected: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        case, listing = _lock_open_case(case, Case.Kind.OBJECTION)
        if decision == Case.Decision.CORRECT and not listing.is_in_force:
            raise CaseRefused("the listing has already ended; uphold or reject the objection instead")
        if decision == Case.Decision.CORRECT and not corrections:
            _end_listing(listing, Listing.Status.REVOKED, reason="correct")
        elif decision == Case.Decision.CORRECT:
            _correct_listing(listing, corrections or {})
        elif listing.status == Listing.Status.DISPUTED and not _other_open_objections(case):
            _set_listing_status(listing, Listing.Status.ACTIVE, reason="objection_closed")
        _record_decision(case, decision, reason, actor, ip_address, {"corrections": _jsonable(corrections)})
    _notify_applicant(case, "decided")
    return case


def decide_repair(
    *, case: Case, decision: str, reason: str, actor: Any, ip_address: str | None = None
) -> Case:
    """Decide a repair: approval ends the listing, lifts its measures and tombstones it in the feed."""
    if decision not in Case.REPAIR_DECISIONS:
        raise CaseRefused(f"not a decision on a repair: {decision}")
    with transaction.atomic():
        case, listing = _lock_open_case(case, Case.Kind.REPAIR)
        if decision == Case.Decision.APPROVE:
            if not listing.is_in_force:
                raise CaseRefused("the listing is no longer in force")
            _end_listing(listing, Listing.Status.REPAIRED, reason="repair")
        _record_decision(case, decision, reason, actor, ip_address, {})
    _notify_applicant(case, "decided")
    return case


def _lock_open_case(case: Case, kind: str) -> tuple[Case, Listing]:
    case = Case.objects.select_for_update().select_related("agency").get(pk=case.pk)
    if case.kind != kind:
        raise CaseRefused(f"case {case.number} is not a {kind} case")
    if not case.is_open:
        raise CaseRefused(f"case {case.number} has already been decided")
    listing = (
        Listing.objects.select_for_update().select_related("credit_list", "subject").get(pk=case.listing_id)
    )
    return case, listing


def _other_open_objections(case: Case) -> bool:
    others = Case.objects.open().filter(listing_id=case.listing_id, kind=Case.Kind.OBJECTION)
    return others.exclude(pk=case.pk).exists()


def _record_decision(
    case: Case, decision: str, reason: str, actor: Any, ip_address: str | None, detail: dict[str, Any]
) -> None:
    case.status = Case.Status.DECIDED
    case.decision = decision
    case.decision_reason = reason
    case.decided_by = actor if getattr(actor, "is_authenticated", False) else None
    case.decided_at = timezone.now()
    case.save(update_fields=["status", "decision", "decision_reason", "decided_by", "decided_at"])
    CaseEvent.objects.create(case=case, action=f"decided_{decision}", actor=case.decided_by, note=reason)
    record_event(
        action=f"case.{case.kind}.decided",
        actor=actor,
        target=case,
        agency=case.agency,
        ip_address=ip_address,
        detail={"number": case.number, "decision": decision, "reason": reason, **detail},
    )


def _set_listing_status(listing: Listing, status: str, *, reason: str) -> None:
    listing.status = status
    listing.last_changed_at = timezone.now()
    listing.save(update_fields=["status", "last_changed_at"])
    record_changes([listing], op="modify", reason=reason)


def _end_listing(listing: Listing, status: str, *, reason: str) -> None:
    now = timezone.now()
    listing.last_seen_at = listing.seen_at  # an ended listing keeps its last snapshot's time
    listing.status = status
    listing.ended_at = now
    listing.last_changed_at = now
    listing.save(update_fields=["status", "ended_at", "last_changed_at", "last_seen_at"])
    record_changes([listing], op="remove", reason=reason)
    apply_measures(listing_ids=[listing.pk], reason=status)


def _correct_listing(listing: Listing, corrections: dict[str, Any]) -> None:
    for name, value in corrections.items():
        setattr(listing, name, value)
    listing.full_clean(exclude=["first_batch", "last_batch", "subject", "credit_list"], validate_unique=False)
    listing.status = Listing.Status.ACTIVE
    listing.last_changed_at = timezone.now()
    listing.save(update_fields=[*corrections, "status", "last_changed_at"])
    record_changes([listing], op="modify", reason="correct")
    # A corrected expiry date changes how long the measures run.
    apply_measures(listing_ids=[listing.pk], reason="corrected")


def _jsonable(values: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in (values or {}).items()}


# Deadlines ---------------------------------------------------------------------------------


def escalate_overdue_cases(*, today: dt.date | None = None) -> int:
    """Flag open cases past their deadline once, and tell each agency's admins; return how many."""
    today = today or timezone.localdate()
    with transaction.atomic():
        cases = list(
            Case.objects.overdue(today)
            .filter(escalated_at__isnull=True)
            .select_related("agency")
            .select_for_update(skip_locked=True, of=("self",))
        )
        now = timezone.now()
        for case in cases:
            case.escalated_at = now
            case.save(update_fields=["escalated_at"])
            CaseEvent.objects.create(case=case, action="escalated", note=f"due {case.due_on}")
            record_event(
                action=f"case.{case.kind}.escalated",
                actor_label="escalate_overdue_cases",
                target=case,
                agency=case.agency,
                detail={"number": case.number, "due_on": case.due_on.isoformat()},
            )
    for agency_id in {case.agency_id for case in cases}:
        _notify_agency_admins([c for c in cases if c.agency_id == agency_id], today)
    return len(cases)


def _notify_agency_admins(cases: list[Case], today: dt.date) -> None:
    admins = Membership.objects.filter(agency_id=cases[0].agency_id, role=Membership.Role.ADMIN)
    recipients = sorted({m.user.email for m in admins.select_related("user") if m.user.email})
    if not recipients:
        return
    context = {"cases": cases, "agency": cases[0].agency, "today": today}
    send_mail(
        subject=f"[Xinyong] {len(cases)} overdue case(s) for {cases[0].agency.name_zh}",
        message=render_to_string("emails/cases_overdue.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=recipients,
    )


def _notify_applicant(case: Case, event: str) -> None:
    context = {"case": case, "listing": case.listing}
    send_mail(
        subject=f"[Xinyong] {case.number}: {'received' if event == 'filed' else 'decision'}",
        message=render_to_string(f"emails/case_{event}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[case.applicant_email],
    )
