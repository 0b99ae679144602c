"""A real Celery worker, a real Redis broker and the real database, end to end."""

from __future__ import annotations

import datetime as dt

import pytest
from celery.contrib.testing.worker import start_worker
from django.utils import timezone

from lists import tasks
from lists.models import Change, Listing, Restriction
from lists.services.measures import apply_measures
from portal.celery import app
from tests.factories import ListingFactory


@pytest.fixture
def celery_worker():  # type: ignore[no-untyped-def]
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10) as worker:
        yield worker


@pytest.mark.django_db(transaction=True)
def test_expiry_task_runs_through_redis_and_lifts_restrictions(celery_worker) -> None:  # type: ignore[no-untyped-def]
    today = timezone.localdate()
    overdue = ListingFactory(
        decided_on=today - dt.timedelta(days=400), expires_on=today - dt.timedelta(days=1)
    )
    current = ListingFactory()
    apply_measures()
    assert Restriction.objects.filter(listing=overdue, lifted_at__isnull=True).exists()

    result = tasks.expire_listings.delay()

    assert result.get(timeout=30) == 1
    overdue.refresh_from_db()
    assert overdue.status == Listing.Status.EXPIRED
    assert Listing.objects.get(pk=current.pk).status == Listing.Status.ACTIVE
    assert not Restriction.objects.filter(listing=overdue, lifted_at__isnull=True).exists()
    assert Change.objects.filter(listing=overdue, op="remove", reason="expire").count() == 1
    assert tasks.expire_listings.delay().get(timeout=30) == 0, "running again changes nothing"
