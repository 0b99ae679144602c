"""Assemble what the public may see about one subject, in a fixed number of queries."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from itertools import groupby

from django.utils import timezone

from ..models import Change, CreditList, Listing, Restriction, Subject

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


def public_listings(subject: Subject) -> list[Listing]:
    """Return the subject's in-force listings on public lists, grouped order (kind, list, newest)."""
    listings = list(
        Listing.objects.in_force()
        .for_subject(subject)
        .filter(credit_list__is_public=True)
        .select_related("credit_list__agency")
        .order_by("credit_list__code", "-decided_on", "pk")
    )
    return sorted(listings, key=lambda listing: KIND_ORDER.index(listing.credit_list.kind))


def subject_profile(subject: Subject, *, on: dt.date | None = None) -> SubjectProfile:
    """Return the subject's public profile; three queries whatever the number of records."""
    on = on or timezone.localdate()
    profile = SubjectProfile(subject=subject, on=on)
    listings = public_listings(subject)
    for kind, of_kind in groupby(listings, key=lambda listing: listing.credit_list.kind):
        lists = [ListGroup(cl, list(rows)) for cl, rows in groupby(of_kind, key=lambda x: x.credit_list)]
        profile.groups.append(KindGroup(kind, lists))
    restrictions = (
        Restriction.objects.in_force(on)
        .filter(subject=subject, listing__status__in=Listing.IN_FORCE, listing__credit_list__is_public=True)
        .select_related("measure__edition", "listing__credit_list__agency")
        .order_by("measure__code", "listing__credit_list__code", "pk")
    )
    for restriction in restrictions:
        is_incentive = restriction.measure.kind == restriction.measure.Kind.INCENTIVE
        (profile.incentives if is_incentive else profile.punishments).append(restriction)
    # Public history covers in-force listings only; ended listings stay in the staff history.
    profile.history = list(
        Change.objects.filter(
            subject=subject, listing__status__in=Listing.IN_FORCE, credit_list__is_public=True
        )
        .select_related("credit_list")
        .order_by("-seq")[:HISTORY_LIMIT]
    )
    return profile
