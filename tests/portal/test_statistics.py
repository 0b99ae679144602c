"""The statistics page: server-side SVG charts over cached aggregates."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from lists.models import Listing
from lists.services.statistics import clear_listing_statistics, compute_listing_statistics
from tests.factories import ListingFactory, SubjectFactory

pytestmark = pytest.mark.django_db


def test_statistics_page_draws_svg_charts_without_javascript(client):
    ListingFactory(subject=SubjectFactory(region_code="440305"))
    response = client.get(reverse("public:statistics"), HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert response.status_code == 200
    body = response.content.decode()
    assert body.count("<svg") == 5
    assert "<script" not in body
    assert "广东" in body and "重大税收违法失信主体" in body


def test_statistics_count_by_province_and_month():
    ListingFactory(subject=SubjectFactory(region_code="440305"))
    ListingFactory(
        subject=SubjectFactory(region_code="310115"), status=Listing.Status.REPAIRED, ended_at=timezone.now()
    )
    stats = compute_listing_statistics()
    assert stats.in_force_by_province == {"44": 1}
    this_month = f"{timezone.localdate():%Y-%m}"
    assert stats.repaired_by_month == {this_month: 1}
    assert stats.months[-1] == this_month and len(stats.months) == 12


def test_statistics_are_served_from_the_cache_until_it_expires(client, django_assert_max_num_queries):
    ListingFactory()
    client.get(reverse("public:statistics"))
    ListingFactory()
    with django_assert_max_num_queries(2):  # the public lists only: the aggregates come from Redis
        cached = client.get(reverse("public:statistics"))
    assert cached.context["stats"].total_in_force == 1
    clear_listing_statistics()
    assert client.get(reverse("public:statistics")).context["stats"].total_in_force == 2


def test_stale_statistics_are_recomputed_by_one_request_only():
    from django.core.cache import cache

    from lists.services import statistics

    ListingFactory()
    first = statistics.listing_statistics()
    first.computed_at -= dt.timedelta(seconds=statistics.CACHE_SECONDS + 1)
    cache.set(statistics.CACHE_KEY, first)
    ListingFactory()
    cache.add(statistics.LOCK_KEY, 1)  # another request is recomputing: serve the stale copy
    assert statistics.listing_statistics().total_in_force == 1
    cache.delete(statistics.LOCK_KEY)
    assert statistics.listing_statistics().total_in_force == 2
