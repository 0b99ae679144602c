"""Helpers shared by the API tests: keys, persons with real-looking ID numbers, published listings."""

from __future__ import annotations

import re

from django.db import transaction
from stdnum.cn import ric

from agencies.models import Agency, ApiKey
from lists.identifiers import mask_person_id, person_id_hash
from lists.models import Listing, Subject, SubjectType
from lists.services.feed import record_changes
from lists.services.measures import apply_measures
from lists.services.subjects import reindex_subject_names
from tests.factories import ListingFactory

FULL_ID = re.compile(r"(?<![0-9A-Z])[1-8]\d{5}(?:19|20)\d{2}[01]\d[0-3]\d{4}[\dX](?![0-9A-Z])")


def make_key(scopes: list[str], *, agency: Agency | None = None, **fields: object) -> tuple[ApiKey, str]:
    """Create an API key; return it and the secret to present."""
    prefix, secret = ApiKey.new_secret()
    key = ApiKey.objects.create(
        name=f"test {prefix}",
        prefix=prefix,
        key_hash=ApiKey.hash_secret(secret),
        scopes=scopes,
        agency=agency,
        **fields,
    )
    return key, secret


def auth(secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def person_id(n: int) -> str:
    """Return a check-digit-valid 18-digit ID number of an adult born in Beijing in 1980."""
    body = f"110105198001{(n % 28) + 1:02d}{n % 1000:03d}"
    return body + ric.calc_check_digit(body + "?")


def make_person(n: int, name: str = "张伟") -> tuple[Subject, str]:
    """Create a natural person stored the way the portal stores one (hash + mask); return it and the ID."""
    pid = person_id(n)
    subject = Subject.objects.create(
        subject_type=SubjectType.NATURAL_PERSON,
        name=name,
        person_id_hash=person_id_hash(pid),
        person_id_masked=mask_person_id(pid),
        region_code="110105",
    )
    reindex_subject_names(subject)
    return subject, pid


def publish(**fields: object) -> Listing:
    """Create an in-force listing the way a publish does: feed entry and restrictions included."""
    with transaction.atomic():
        listing = ListingFactory(**fields)
        record_changes([listing], op="add", reason="publish")
    apply_measures(listing_ids=[listing.pk])
    return listing


def end_listing(listing: Listing, status: str = Listing.Status.REPAIRED) -> None:
    """End a listing the way repair does: status, feed tombstone, restrictions lifted."""
    from django.utils import timezone

    with transaction.atomic():
        listing.status = status
        listing.ended_at = listing.last_changed_at = timezone.now()
        listing.save(update_fields=["status", "ended_at", "last_changed_at"])
        record_changes([listing], op="remove", reason="repair")
    apply_measures(listing_ids=[listing.pk], reason="repaired")
