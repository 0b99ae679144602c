"""Assemble what the public may see about one subject, in a fixed number of queries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import groupby

from django.utils import timezone

from ..models import Change, CreditList, Listing, Restriction, Subject
from .measures import in_force

KIND_ORDER = [k.value for k in CreditList.Kind]
HISTORY_LIMIT = 100


@dataclass
class ListGroup:
    credit_list: CreditList
    listings: list[Listing]


@dataclass
class KindGroup:
    kind: str
    lists: list[ListGroup]


@dataclass
class SubjectProfile:
    """The public record of a subject: in-force listings, measures in force, their history."""

    subject: Subject
    on: dt.date
    groups: list[KindGroup] = field(default_factory=list)
    punishments: list[Restriction] = field(default_factory=list)
    incentives: list[Restriction] = field(default_factory=list)
    history: list[Change] = field(default_factory=list)

    @property
    def listings(self) -> list[Listing]:
        return [listing for group in self.groups for lg in group.lists for listing in lg.listings]


def in_force_public_listings(subject_ids: Iterable[int]) -> list[Listing]:
    """Return the subjects' in-force listings on public lists, each with its list and agency, unordered."""
    # Two single-table reads joined here, not in SQL: without fresh planner statistics a join
    # may start from the 29 lists and read all their listings by list (seconds for 40 subjects).
    listings = list(Listing.objects.in_force().filter(subject_id__in=list(subject_ids)))
    lists = CreditList.objects.public().select_related("agency").in_bulk({x.credit_list_id for x in listings})
    kept = [x for x in listings if x.credit_list_id in lists]
    for listing in kept:
        listing.credit_list = lists[listing.credit_list_id]
    return kept


def public_listings(subject: Subject) -> list[Listing]:
    """Return the subject's in-force listings on public lists, grouped order (kind, list, newest)."""
    listings = in_force_public_listings([subject.pk])
    # Stable sorts: by kind, then list code, newest decision first (none before any), then pk.
    listings.sort(key=lambda x: x.pk)
    listings.sort(key=lambda x: x.decided_on or dt.date.max, reverse=True)
    listings.sort(key=lambda x: (KIND_ORDER.index(x.credit_list.kind), x.credit_list.code))
    return listings


def subject_profile(subject: Subject, *, on: dt.date | None = None) -> SubjectProfile:
    """Return the subject's public profile in at most five queries, each on one table's index.

    A restriction and a change carry their listing's subject (lists.services.measures and
    lists.services.feed copy it), so the subject's in-force public listings select them.
    """
    on = on or timezone.localdate()
    profile = SubjectProfile(subject=subject, on=on)
    listings = public_listings(subject)
    for kind, of_kind in groupby(listings, key=lambda listing: listing.credit_list.kind):
        lists = [ListGroup(cl, list(rows)) for cl, rows in groupby(of_kind, key=lambda x: x.credit_list)]
        profile.groups.append(KindGroup(kind, lists))
    if not listings:
        return profile  # no in-force public listing: no measures or history to show either
    by_id = {listing.pk: listing for listing in listings}
    restrictions = [r for r in in_force([subject.pk], on) if r.listing_id in by_id]
    for r in restrictions:
        r.listing = by_id[r.listing_id]
    restrictions.sort(key=lambda r: (r.measure.code, r.listing.credit_list.code, r.listing_id))
    for restriction in restrictions:
        is_incentive = restriction.measure.kind == restriction.measure.Kind.INCENTIVE
        (profile.incentives if is_incentive else profile.punishments).append(restriction)
    # Public history covers in-force listings only; ended listings stay in the staff history.
    profile.history = list(
        Change.objects.filter(subject=subject, listing_id__in=list(by_id)).order_by("-seq")[:HISTORY_LIMIT]
    )
    for change in profile.history:
        change.credit_list = by_id[change.listing_id].credit_list
    return profile
