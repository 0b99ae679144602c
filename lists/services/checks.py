"""Answer "may this subject do X now?" and record every screening and check request."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from agencies.models import ApiKey

from .. import identifiers as ids
from ..models import ApiRequestLog, Listing, Measure, Restriction, Subject
from .screening import lookup_identifier


@dataclass
class CheckResult:
    """The answer of a restriction check, with the records and legal basis behind it."""

    subject: Subject | None
    measure: Measure | None
    restrictions: list[dict[str, Any]] = field(default_factory=list)
    incentives: list[dict[str, Any]] = field(default_factory=list)
    listings: list[dict[str, Any]] = field(default_factory=list)
    data_version: int = 0

    @property
    def allowed(self) -> bool:
        return not self.restrictions

    @property
    def until(self) -> dt.date | None:
        """Return the day the last restriction ends (None when open-ended or none)."""
        ends = [r["until"] for r in self.restrictions]
        return None if not ends or None in ends else max(ends)


def data_version() -> int:
    """Return the latest change-feed sequence number: the data version answers reflect."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(seq), 0) FROM lists_change")
        return int(cursor.fetchone()[0])


def find_subject(identifier: str) -> Subject | None:
    """Return the subject with exactly this identifier (a person's by keyed hash), or None."""
    found = lookup_identifier(identifier)
    if found is None:
        return None
    column, value = found
    lookup = {"legacy_ids__contains": [value]} if column == "legacy_ids" else {column: value}
    return Subject.objects.filter(**lookup).order_by("pk").first()


def check_restriction(
    *, subject: Subject | None, measure: Measure | None, on: dt.date | None = None
) -> CheckResult:
    """Return whether the measure (any measure when None) restricts the subject on the day."""
    on = on or timezone.localdate()
    result = CheckResult(subject=subject, measure=measure, data_version=data_version())
    if subject is None:
        return result
    restrictions = (
        Restriction.objects.in_force(on)
        .filter(subject=subject, listing__credit_list__is_public=True)
        .select_related("measure", "listing")
        .order_by("measure__code", "listing_id")
    )
    if measure is not None:
        restrictions = restrictions.filter(measure__code=measure.code)
    listing_ids = set()
    for r in restrictions:
        entry = _restriction(r)
        target = result.incentives if r.measure.kind == Measure.Kind.INCENTIVE else result.restrictions
        target.append(entry)
        listing_ids.add(r.listing_id)
    listings = (
        Listing.objects.filter(Q(pk__in=listing_ids)).select_related("credit_list__agency").order_by("pk")
    )
    result.listings = [_listing(listing) for listing in listings]
    return result


def _restriction(r: Restriction) -> dict[str, Any]:
    return {
        "measure": r.measure.code,
        "name": r.measure.name_zh,
        "kind": r.measure.kind,
        "legal_basis": r.measure.legal_basis,
        "listing_id": r.listing_id,
        "starts_on": r.starts_on,
        "until": r.ends_on,
    }


def _listing(listing: Listing) -> dict[str, Any]:
    return {
        "id": listing.pk,
        "list": listing.credit_list.code,
        "list_name": listing.credit_list.name_zh,
        "agency": listing.credit_list.agency.code,
        "reference": listing.reference,
        "status": listing.status,
        "decided_on": listing.decided_on,
        "expires_on": listing.expires_on,
        "legal_basis": listing.credit_list.legal_basis,
    }


def safe_identifier(text: str) -> str:
    """Return an identifier as it may be logged: a personal ID number masked, others as given."""
    ident = ids.classify_identifier(text)
    if ident.kind == ids.PERSON_ID:
        return ids.mask_person_id(ident.value)
    return ident.value[:40]


def record_api_request(
    *,
    endpoint: str,
    api_key: ApiKey | None,
    query: dict[str, Any],
    data_version: int,
    results_count: int,
    measure: Measure | None = None,
    subject: Subject | None = None,
    outcome: str = "",
) -> ApiRequestLog:
    """Record one screening or check request for audit and for per-measure enforcement counts."""
    return ApiRequestLog.objects.create(
        endpoint=endpoint,
        api_key=api_key,
        query=query,
        data_version=data_version,
        results_count=results_count,
        measure=measure,
        subject=subject,
        outcome=outcome,
    )
