"""The demo data `make run` loads: searchable, marked synthetic, in the feed, with provenance."""

from __future__ import annotations

import pytest

from lists.models import Batch, Change, CreditList, Listing, Subject, SubjectType
from lists.services.demo import seed_demo

pytestmark = pytest.mark.django_db

BANNER = "合成演示数据"


@pytest.fixture
def summary():  # type: ignore[no-untyped-def]
    return seed_demo(subjects=80, seed=5)


def test_demo_subjects_are_found_by_the_public_search_and_shown_as_synthetic(client, summary) -> None:  # type: ignore[no-untyped-def]
    company = Subject.objects.filter(subject_type=SubjectType.LEGAL_PERSON).order_by("pk").first()
    results = client.get("/search/", {"q": company.name}).content.decode()
    page = client.get(f"/subjects/{company.pk}/").content.decode()
    assert summary.subjects == 80 == Subject.objects.filter(is_synthetic=True).count()
    assert f"/subjects/{company.pk}/" in results
    assert company.name in page and BANNER in page


def test_demo_persons_show_only_a_masked_id_number(client, summary) -> None:  # type: ignore[no-untyped-def]
    person = Subject.objects.filter(subject_type=SubjectType.NATURAL_PERSON, listings__isnull=False).first()
    page = client.get(f"/subjects/{person.pk}/").content.decode()
    assert person.person_id_masked and "*" in person.person_id_masked
    assert person.person_id_masked in page


def test_every_demo_listing_is_in_the_feed_from_a_demo_batch(summary) -> None:  # type: ignore[no-untyped-def]
    listings = Listing.objects.filter(subject__is_synthetic=True)
    assert listings.count() == summary.listings == summary.changes > 0
    assert Change.objects.filter(reason="demo", op="add").count() == summary.listings
    assert not listings.exclude(first_batch__origin=Batch.Origin.DEMO).exists()


def test_lists_with_demo_listings_say_when_they_were_last_published(client, summary) -> None:  # type: ignore[no-untyped-def]
    with_listings = CreditList.objects.filter(code__in=summary.lists)
    api = {item["code"]: item for item in client.get("/api/v1/lists").json()}
    assert with_listings.exists()
    assert not with_listings.filter(last_published_at__isnull=True).exists()
    assert all(api[code]["last_published_at"] for code in summary.lists if code in api)
