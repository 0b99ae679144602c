"""A real Celery worker, a real Redis broker and the real database, end to end."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.utils import timezone

from lists import tasks
from lists.models import Change, Listing, Restriction
from lists.services.measures import apply_measures
from portal.celery import app
from tests.factories import ListingFactory
from tests.lists.test_batches import load


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


@pytest.mark.django_db(transaction=True)
def test_a_batch_whose_task_was_lost_is_queued_again_and_validated() -> None:
    """Redis can go between the upload's queue check and the enqueue: the beat job recovers."""
    from lists.models import Batch, CreditList
    from lists.services import batches
    from tests.factories import valid_uscc

    payload = f"名称,统一社会信用代码,文书号,列入原因,决定日期\n测试1贸易有限公司,{valid_uscc(1)},税1号,x,2025-03-01\n"
    batch = batches.receive_batch(
        credit_list=CreditList.objects.get(code="TAX_MAJOR_VIOLATION"),
        payload=payload.encode(),
        filename="lost.csv",
        mode="incremental",
        origin="command",
    )
    app.control.purge()  # the task message is gone, as if Redis had lost it
    assert tasks.requeue_stranded_batches() == [], "a fresh batch may still be waiting in the queue"
    Batch.objects.filter(pk=batch.pk).update(created_at=timezone.now() - dt.timedelta(minutes=11))

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        assert tasks.requeue_stranded_batches.delay().get(timeout=30) == [batch.pk]
        deadline = timezone.now() + dt.timedelta(seconds=30)
        while Batch.objects.get(pk=batch.pk).status != Batch.Status.READY and timezone.now() < deadline:
            time.sleep(0.2)
    assert Batch.objects.get(pk=batch.pk).status == Batch.Status.READY
    assert tasks.requeue_stranded_batches() == []


def wait_for_status(batch_id: int, status: str) -> str:
    from lists.models import Batch

    deadline = timezone.now() + dt.timedelta(seconds=30)
    while (current := Batch.objects.get(pk=batch_id).status) != status and timezone.now() < deadline:
        time.sleep(0.2)
    return current


@pytest.mark.django_db(transaction=True)
def test_a_big_batch_is_published_by_a_worker_and_a_lost_rollback_is_queued_again(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from agencies.models import Membership
    from lists.models import Batch, CreditList
    from lists.services import batches
    from lists.services.batches import queued
    from tests.factories import MembershipFactory, valid_uscc

    monkeypatch.setattr(queued, "IN_REQUEST_ROWS", 0)  # as if it had a million rows
    credit_list = CreditList.objects.get(code="TAX_MAJOR_VIOLATION")
    approver = MembershipFactory(agency=credit_list.agency, role=Membership.Role.APPROVER).user
    payload = f"名称,统一社会信用代码,文书号,列入原因,决定日期\n测试1贸易有限公司,{valid_uscc(1)},税1号,x,2025-03-01\n"
    batch = load(credit_list, payload.encode())
    app.control.purge()  # process_batch's own message: already done above
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        batches.request_publication(batch_id=batch.pk, approver=approver)
        assert wait_for_status(batch.pk, Batch.Status.PUBLISHED) == Batch.Status.PUBLISHED
    assert Listing.objects.in_force().filter(credit_list=credit_list).count() == 1

    batches.request_rollback(batch_id=batch.pk, actor=approver)
    app.control.purge()  # the task message is gone, as if Redis had lost it
    Batch.objects.filter(pk=batch.pk).update(queued_at=timezone.now() - dt.timedelta(minutes=11))
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        assert tasks.requeue_stranded_batches.delay().get(timeout=30) == [batch.pk]
        assert wait_for_status(batch.pk, Batch.Status.ROLLED_BACK) == Batch.Status.ROLLED_BACK
    assert not Listing.objects.in_force().filter(credit_list=credit_list).exists()
