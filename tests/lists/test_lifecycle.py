"""Expiry and publication periods: listings end when their period ends, once, with their measures."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command

from lists.models import Change, CreditList, Listing, Restriction
from lists.services.lifecycle import expire_listings
from lists.services.measures import apply_measures
from lists.services.periods import default_expiry
from tests.factories import ListingFactory

TIERED = {"kind": "tiered", "tiers": {"minor": 3, "general": 12, "serious": 36}}


def live_restrictions(listing: Listing) -> int:
    return Restriction.objects.filter(listing=listing, lifted_at__isnull=True).count()


@pytest.mark.django_db
def test_a_listing_stays_on_its_last_day_and_expires_the_day_after() -> None:
    last_day = dt.date(2026, 3, 31)
    listing = ListingFactory(decided_on=dt.date(2023, 3, 31), expires_on=last_day)
    apply_measures()
    assert live_restrictions(listing) > 0

    assert expire_listings(today=last_day) == 0
    assert Listing.objects.get(pk=listing.pk).status == Listing.Status.ACTIVE

    assert expire_listings(today=last_day + dt.timedelta(days=1)) == 1
    listing.refresh_from_db()
    assert listing.status == Listing.Status.EXPIRED and listing.ended_at is not None
    assert live_restrictions(listing) == 0
    assert set(Restriction.objects.filter(listing=listing).values_list("lifted_reason", flat=True)) == {
        "expired"
    }
    change = Change.objects.get(listing=listing)
    assert (change.op, change.reason, change.data["status"]) == ("remove", "expire", "expired")


@pytest.mark.django_db
def test_an_expired_listing_keeps_the_time_its_lists_last_snapshot_confirmed_it() -> None:
    listing = ListingFactory(
        decided_on=dt.date(2025, 3, 31),
        published_on=dt.date(2025, 3, 31),
        expires_on=dt.date(2026, 3, 31),
        last_seen_at=dt.datetime(2026, 1, 5, tzinfo=dt.UTC),
    )
    confirmed = dt.datetime(2026, 3, 20, tzinfo=dt.UTC)  # a later snapshot left it in force
    CreditList.objects.filter(pk=listing.credit_list_id).update(last_snapshot_at=confirmed)
    assert Listing.objects.get(pk=listing.pk).seen_at == confirmed

    expire_listings(today=dt.date(2026, 4, 1))
    CreditList.objects.filter(pk=listing.credit_list_id).update(
        last_snapshot_at=confirmed + dt.timedelta(days=30)
    )
    listing = Listing.objects.get(pk=listing.pk)
    assert listing.status == Listing.Status.EXPIRED and listing.seen_at == confirmed


@pytest.mark.django_db
def test_expiring_twice_leaves_the_same_state_and_no_duplicate_changes() -> None:
    today = dt.date(2026, 6, 1)
    overdue = [
        ListingFactory(expires_on=today - dt.timedelta(days=n), decided_on=dt.date(2024, 1, 1))
        for n in (1, 30)
    ]
    current = ListingFactory(expires_on=today + dt.timedelta(days=1), decided_on=dt.date(2024, 1, 1))
    until_removed = ListingFactory(expires_on=None, decided_on=dt.date(2020, 1, 1))
    apply_measures()

    assert expire_listings(today=today) == 2
    state = list(Listing.objects.order_by("pk").values_list("pk", "status", "ended_at"))
    lifted = list(Restriction.objects.order_by("pk").values_list("pk", "lifted_at"))
    assert expire_listings(today=today) == 0
    call_command("expire_listings", "--today", today.isoformat(), stdout=None)

    assert list(Listing.objects.order_by("pk").values_list("pk", "status", "ended_at")) == state
    assert list(Restriction.objects.order_by("pk").values_list("pk", "lifted_at")) == lifted
    assert Change.objects.filter(reason="expire").count() == 2
    assert {c.listing_id for c in Change.objects.filter(reason="expire")} == {o.pk for o in overdue}
    assert {current.pk, until_removed.pk} <= set(Listing.objects.in_force().values_list("pk", flat=True))


@pytest.mark.parametrize(
    ("severity", "expected"),
    [("minor", dt.date(2025, 4, 30)), ("general", dt.date(2026, 1, 31)), ("serious", dt.date(2028, 1, 31))],
)
def test_tiered_periods_follow_the_2025_tiers(severity: str, expected: dt.date) -> None:
    penalty_list = CreditList(code="T", period_rule=TIERED)
    assert default_expiry(penalty_list, dt.date(2025, 1, 31), severity) == expected


def test_fixed_and_until_removed_periods() -> None:
    assert default_expiry(
        CreditList(period_rule={"kind": "fixed", "months": 36}), dt.date(2024, 2, 29)
    ) == dt.date(2027, 2, 28)
    assert default_expiry(CreditList(period_rule={"kind": "until_removed"}), dt.date(2024, 2, 29)) is None
    assert default_expiry(CreditList(period_rule=TIERED), None, "minor") is None


def test_an_unknown_severity_gets_the_longest_tier_never_a_shorter_one() -> None:
    assert default_expiry(CreditList(period_rule=TIERED), dt.date(2025, 1, 1), "") == dt.date(2028, 1, 1)


@pytest.mark.django_db
def test_tiered_listings_expire_each_at_the_end_of_their_own_tier() -> None:
    penalty_list = CreditList.objects.get(code="ADMIN_PENALTY")
    decided = dt.date(2025, 1, 31)
    listings = {
        severity: ListingFactory(
            credit_list=penalty_list,
            severity=severity,
            decided_on=decided,
            expires_on=default_expiry(penalty_list, decided, severity),
        )
        for severity in ("minor", "general", "serious")
    }

    assert expire_listings(today=dt.date(2025, 4, 30)) == 0
    assert expire_listings(today=dt.date(2025, 5, 1)) == 1
    assert expire_listings(today=dt.date(2026, 2, 1)) == 1
    assert expire_listings(today=dt.date(2028, 1, 31)) == 0
    assert expire_listings(today=dt.date(2028, 2, 1)) == 1
    assert all(Listing.objects.get(pk=lst.pk).status == Listing.Status.EXPIRED for lst in listings.values())
