"""Issue and verify credit reports.

A report's content hash covers the public records it states (subject, in-force listings,
measures in force), not its number or date: recomputing it later tells whether the records
have changed since the report was issued.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..models import CreditReport, Subject
from .profiles import SubjectProfile, subject_profile


def report_content(profile: SubjectProfile) -> dict[str, Any]:
    """Return the public records of a profile in the canonical form the hash covers."""
    subject = profile.subject
    return {
        "subject": {
            "id": subject.pk,
            "name": subject.name,
            "type": subject.subject_type,
            "identifier": subject.identifier_display,  # masked for persons
        },
        "listings": [
            {
                "list": listing.credit_list.code,
                "agency": listing.credit_list.agency.code,
                "reference": listing.reference,
                "reason": listing.reason,
                "decided_on": _iso(listing.decided_on),
                "published_on": _iso(listing.published_on),
                "expires_on": _iso(listing.expires_on),
                "status": listing.status,
            }
            for listing in profile.listings
        ],
        "measures": [
            {
                "measure": r.measure.code,
                "edition": r.measure.edition.code,
                "listing": r.listing.reference,
                "starts_on": _iso(r.starts_on),
                "ends_on": _iso(r.ends_on),
            }
            for r in [*profile.punishments, *profile.incentives]
        ],
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def content_sha256(content: dict[str, Any]) -> str:
    """Return the SHA-256 of content serialised canonically (sorted keys, UTF-8, no spaces)."""
    canonical = json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def issue_report(*, subject: Subject, language: str) -> tuple[CreditReport, SubjectProfile]:
    """Return the numbered report of the subject's public records, and the profile it shows.

    The same records in the same language on the same day keep one number: the report is a GET
    anyone (or any crawler) may repeat, so repeating it must not store a row each time.
    """
    profile = subject_profile(subject)
    digest = content_sha256(report_content(profile))
    now = timezone.now()
    same = CreditReport.objects.filter(
        subject=subject, language=language, content_sha256=digest, issued_at__date=timezone.localdate(now)
    ).first()
    if same is not None:
        return same, profile
    for _ in range(5):  # a random suffix collides about never; retry rather than fail if it does
        number = f"XY{timezone.localtime(now):%Y%m%d}{secrets.token_hex(4).upper()}"
        try:
            with transaction.atomic():
                report = CreditReport.objects.create(
                    number=number, subject=subject, issued_at=now, content_sha256=digest, language=language
                )
            return report, profile
        except IntegrityError:
            continue
    raise RuntimeError("could not allocate a unique report number")


@dataclass
class Verification:
    report: CreditReport | None
    hash_matches: bool
    records_changed: bool


def verify_report(*, number: str, sha256: str) -> Verification:
    """Check a report number and content hash; say whether the subject's records changed since."""
    report = CreditReport.objects.select_related("subject").filter(number=number.strip().upper()).first()
    if report is None:
        return Verification(report=None, hash_matches=False, records_changed=False)
    matches = secrets.compare_digest(report.content_sha256, sha256.strip().lower())
    current = content_sha256(report_content(subject_profile(report.subject)))
    return Verification(report=report, hash_matches=matches, records_changed=current != report.content_sha256)
