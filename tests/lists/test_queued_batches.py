"""Big batches are published and rolled back by a task, not within the approver's request."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from agencies.models import AuditEvent, Membership
from lists import tasks
from lists.models import Batch, Listing
from lists.services import batches
from lists.services.batches import BatchError, publishing, queued
from tests.lists.test_batches import company, csv_bytes, load

pytestmark = pytest.mark.django_db


@pytest.fixture
def big(monkeypatch):  # type: ignore[no-untyped-def]
    """Treat every batch as too big to publish or roll back within a request."""
    monkeypatch.setattr(queued, "IN_REQUEST_ROWS", 0)


def in_force(batch: Batch) -> int:
    return Listing.objects.in_force().filter(credit_list_id=batch.credit_list_id).count()


def queue_publication(batch: Batch, approver, capture) -> Batch:  # type: ignore[no-untyped-def]
    with capture() as callbacks:
        batch = batches.request_publication(batch_id=batch.pk, approver=approver, ip_address="192.0.2.5")
    assert len(callbacks) == 1, "the publication task is queued when the request commits"
    return batch


def test_a_big_batch_is_queued_then_published_by_the_task_as_the_approver(
    big, tax_list, uploader, approver, django_capture_on_commit_callbacks
):
    batch = load(tax_list, csv_bytes(company(1), company(2)), user=uploader)
    batch = queue_publication(batch, approver, django_capture_on_commit_callbacks)

    batch.refresh_from_db()
    assert batch.status == Batch.Status.PUBLISHING and batch.approved_by == approver
    assert in_force(batch) == 0, "nothing is visible before the task commits"
    assert AuditEvent.objects.get(action="batch.publish_queued").actor == approver
    asked_at = batch.approved_at

    assert tasks.publish_batch(batch.pk, "192.0.2.5") == Batch.Status.PUBLISHED
    batch.refresh_from_db()
    assert in_force(batch) == 2 and batch.approved_at == asked_at and batch.published_at >= asked_at
    event = AuditEvent.objects.get(action="batch.publish")
    assert event.actor == approver and event.ip_address == "192.0.2.5"
    assert tasks.publish_batch(batch.pk) == Batch.Status.PUBLISHED, "a second run does nothing"
    assert not AuditEvent.objects.filter(action="batch.publish_failed").exists()


def test_what_would_refuse_a_publication_refuses_the_request_at_once(
    big, tax_list, uploader, approver, django_capture_on_commit_callbacks
):
    batch = load(tax_list, csv_bytes(company(1), company(2, day="2025-13-45")), user=uploader)
    assert batch.counts["invalid"] == 1
    with django_capture_on_commit_callbacks() as callbacks:
        with pytest.raises(BatchError, match="four-eyes"):
            batches.request_publication(batch_id=batch.pk, approver=uploader)
        with pytest.raises(BatchError, match="invalid"):
            batches.request_publication(batch_id=batch.pk, approver=approver)
    assert not callbacks
    batch.refresh_from_db()
    assert batch.status == Batch.Status.READY and batch.approved_by is None


def test_a_task_that_is_refused_gives_the_batch_back_with_the_reason(
    big, tax_list, uploader, approver, django_capture_on_commit_callbacks
):
    batch = queue_publication(
        load(tax_list, csv_bytes(company(1)), user=uploader), approver, django_capture_on_commit_callbacks
    )
    Membership.objects.filter(user=approver).update(role=Membership.Role.UPLOADER)  # between request and task

    assert tasks.publish_batch(batch.pk) == Batch.Status.READY
    batch.refresh_from_db()
    assert batch.approved_by is None and batch.error.startswith("Not published: only an approver")
    assert AuditEvent.objects.get(action="batch.publish_failed").detail["reason"] == batch.error
    assert in_force(batch) == 0

    Membership.objects.filter(user=approver).update(role=Membership.Role.APPROVER)
    batch = queue_publication(batch, approver, django_capture_on_commit_callbacks)
    assert batch.error == "", "asking again clears the old reason"
    assert tasks.publish_batch(batch.pk) == Batch.Status.PUBLISHED and in_force(batch) == 1


def test_a_task_that_fails_leaves_nothing_published_and_says_so(
    big, tax_list, uploader, approver, monkeypatch, django_capture_on_commit_callbacks
):
    batch = queue_publication(
        load(tax_list, csv_bytes(company(1)), user=uploader), approver, django_capture_on_commit_callbacks
    )

    def crash(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("worker lost its mind")

    monkeypatch.setattr(publishing, "derive_restrictions", crash)  # after the listings are written
    with pytest.raises(RuntimeError):
        tasks.publish_batch(batch.pk)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.READY and in_force(batch) == 0
    assert "RuntimeError" in batch.error and "nothing was changed" in batch.error
    assert "lost its mind" not in batch.error, "a database error's text could quote rows: not shown"


def test_a_big_rollback_is_queued_and_a_later_publication_makes_the_task_refuse_it(
    big, monkeypatch, tax_list, uploader, approver, django_capture_on_commit_callbacks
):
    first = queue_publication(
        load(tax_list, csv_bytes(company(1)), user=uploader), approver, django_capture_on_commit_callbacks
    )
    tasks.publish_batch(first.pk)
    with django_capture_on_commit_callbacks() as callbacks:
        first = batches.request_rollback(batch_id=first.pk, actor=approver)
    assert first.status == Batch.Status.ROLLING_BACK and len(callbacks) == 1 and in_force(first) == 1
    with pytest.raises(BatchError, match="already rolling back"):
        batches.request_rollback(batch_id=first.pk, actor=approver)

    later = load(tax_list, csv_bytes(company(2)), user=uploader)  # published before the task runs
    batches.publish_batch(batch_id=later.pk, approver=approver)
    assert tasks.rollback_batch(first.pk) == Batch.Status.PUBLISHED
    first.refresh_from_db()
    assert first.error.startswith("Not rolled back: a later batch") and first.rolled_back_by is None
    assert in_force(first) == 2

    batches.rollback_batch(batch_id=later.pk, actor=approver)
    monkeypatch.setattr(queued, "IN_REQUEST_ROWS", 50_000)  # now small enough for the request
    assert batches.request_rollback(batch_id=first.pk, actor=approver).status == Batch.Status.ROLLED_BACK
    first.refresh_from_db()
    assert first.rolled_back_by == approver and in_force(first) == 0
    assert first.error == "", "the reason it was not rolled back before is gone"


def test_a_small_batch_is_still_published_within_the_request(tax_list, uploader, approver):
    batch = load(tax_list, csv_bytes(company(1)), user=uploader)
    assert batches.request_publication(batch_id=batch.pk, approver=approver).status == Batch.Status.PUBLISHED
    assert batches.request_rollback(batch_id=batch.pk, actor=approver).status == Batch.Status.ROLLED_BACK


def test_a_queued_batch_whose_task_was_lost_is_found_again(
    big, tax_list, uploader, approver, django_capture_on_commit_callbacks
):
    batch = queue_publication(
        load(tax_list, csv_bytes(company(1)), user=uploader), approver, django_capture_on_commit_callbacks
    )
    assert batches.stranded_actions() == [], "a fresh one may still be waiting in the queue"
    Batch.objects.filter(pk=batch.pk).update(queued_at=timezone.now() - dt.timedelta(minutes=11))
    assert batches.stranded_actions() == [(Batch.Status.PUBLISHING, batch.pk)]
