"""A big batch's publication is planned while it awaits approval, and used only while it holds."""

from __future__ import annotations

import logging

import psycopg
import pytest
from django.db import OperationalError, connection

from lists import tasks
from lists.models import Batch, CreditList, Listing, Subject
from lists.services import batches
from lists.services.batches import planning, publishing, queued
from tests.lists.test_batches import company, csv_bytes, load, publish

pytestmark = pytest.mark.django_db
FROM_PLAN = "from the prepared plan"


@pytest.fixture(autouse=True)
def every_batch_is_big(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(planning, "PREPARE_ROWS", 1)


def plan_tables() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname FROM pg_class WHERE relname LIKE 'lists\\_plan\\_%' ORDER BY relname")
        return [name for (name,) in cursor.fetchall()]


def prepared(credit_list: CreditList, payload: bytes, user) -> Batch:  # type: ignore[no-untyped-def]
    batch = load(credit_list, payload, user=user)
    assert planning.prepare_publication(batch.pk)
    return batch


def other_list_publishes(*rows: str) -> None:
    """Another agency's list publishes rows that create subjects, as between plan and approval."""
    other = load(CreditList.objects.get(code="SPC_DEFAULTER"), csv_bytes(*rows))
    batches.publish_batch(batch_id=other.pk, waived_by="tests")


def test_a_big_ready_batch_gets_its_plan_queued_when_its_validation_commits(
    tax_list, uploader, monkeypatch, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        batch = load(tax_list, csv_bytes(company(1), company(2)), user=uploader)
    assert len(callbacks) == 2, "validation, then the plan"
    assert tasks.prepare_publication(batch.pk) is True
    assert len(plan_tables()) == 3, "staged rows, new subjects, added listings"
    assert tasks.prepare_publication(batch.pk) is False, "a second run does nothing"

    monkeypatch.setattr(planning, "PREPARE_ROWS", 3)
    with django_capture_on_commit_callbacks() as callbacks:
        load(tax_list, csv_bytes(company(3), company(4)), user=uploader)
    assert len(callbacks) == 1, "a small batch is planned by its publication"


def test_a_publication_writes_from_its_plan_and_drops_it(tax_list, uploader, approver, caplog):
    Subject.objects.create(
        subject_type="legal_person", name="测试1贸易有限公司", uscc=company(1).split(",")[1]
    )
    batch = prepared(tax_list, csv_bytes(company(1), company(2), company(3)), uploader)

    with caplog.at_level(logging.INFO, logger="lists.services.batches.publishing"):
        publish(batch, approver)
    assert FROM_PLAN in caplog.text
    listings = Listing.objects.filter(credit_list=tax_list).select_related("subject").order_by("source_key")
    assert [listing.subject.name for listing in listings] == [f"测试{n}贸易有限公司" for n in (1, 2, 3)]
    assert Subject.objects.count() == 3, "the known subject is found, two new ones are created"
    assert Listing.objects.get(subject__uscc=company(1).split(",")[1]).status == "active"
    assert plan_tables() == []


def test_a_subject_created_since_by_unique_identifier_makes_the_publication_plan_again(
    tax_list, uploader, approver, caplog
):
    batch = prepared(tax_list, csv_bytes(company(1), company(2)), uploader)
    other_list_publishes(company(2))

    with caplog.at_level(logging.INFO, logger="lists.services.batches.publishing"):
        publish(batch, approver)
    assert "no longer holds (IntegrityError)" in caplog.text
    uscc = company(2).split(",")[1]
    assert Subject.objects.filter(uscc=uscc).count() == 1
    assert set(Listing.objects.filter(subject__uscc=uscc).values_list("credit_list__code", flat=True)) == {
        "SPC_DEFAULTER", "TAX_MAJOR_VIOLATION"
    }  # fmt: skip
    assert plan_tables() == []


def test_a_subject_created_since_by_name_makes_the_publication_plan_again(
    tax_list, uploader, approver, caplog
):
    unnamed = "无码商行,,税稽罚〔2025〕9号,虚开增值税专用发票,2025-03-01"
    batch = prepared(tax_list, csv_bytes(company(1), unnamed), uploader)
    other_list_publishes(unnamed)

    with caplog.at_level(logging.INFO, logger="lists.services.batches.publishing"):
        publish(batch, approver)
    assert "no longer holds (StalePlan)" in caplog.text
    assert Subject.objects.filter(name="无码商行").count() == 1, "found by name, not created twice"
    assert Listing.objects.filter(subject__name="无码商行").count() == 2


def test_a_plan_made_before_the_list_changed_is_not_used(tax_list, uploader, approver, caplog):
    batch = prepared(tax_list, csv_bytes(company(1), company(2)), uploader)
    publish(load(tax_list, csv_bytes(company(1)), user=uploader), approver)  # the same record, first

    with caplog.at_level(logging.INFO, logger="lists.services.batches.publishing"):
        batch = publish(batch, approver)
    assert FROM_PLAN not in caplog.text
    assert batch.counts["add"] == 1 and batch.counts["unchanged"] == 1, "diffed again against the list"
    assert Listing.objects.filter(credit_list=tax_list).count() == 2 and plan_tables() == []


def test_a_plan_emptied_by_a_crash_is_not_used(tax_list, uploader, approver, caplog):
    batch = prepared(tax_list, csv_bytes(company(1), company(2)), uploader)
    with connection.cursor() as cursor:  # what crash recovery does to unlogged tables
        cursor.execute("TRUNCATE " + ", ".join(plan_tables()))

    with caplog.at_level(logging.INFO, logger="lists.services.batches.publishing"):
        publish(batch, approver)
    assert FROM_PLAN not in caplog.text
    assert Listing.objects.filter(credit_list=tax_list).count() == 2 and plan_tables() == []


def test_a_new_mapping_or_a_rejection_drops_the_plan(tax_list, uploader):
    batch = prepared(tax_list, csv_bytes(company(1)), uploader)
    batches.confirm_mapping(batch_id=batch.pk, overrides={}, actor=uploader)
    batches.process_batch(batch_id=batch.pk)
    assert plan_tables() == [], "made from rows that no longer exist"

    assert planning.prepare_publication(batch.pk)
    batches.reject_batch(batch_id=batch.pk, actor=uploader)
    assert plan_tables() == []
    assert planning.prepare_publication(batch.pk) is False, "only a ready batch is planned"


def test_small_batches_and_leftover_plans(tax_list, uploader, monkeypatch):
    batch = prepared(tax_list, csv_bytes(company(1)), uploader)
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.FAILED)  # as by an interrupted run
    monkeypatch.setattr(planning, "PREPARE_ROWS", 2)
    small = load(tax_list, csv_bytes(company(2)), user=uploader)

    assert planning.prepare_publication(small.pk) is False
    assert plan_tables() == [], "preparing first drops the plans of batches that cannot use theirs"


@pytest.mark.django_db(transaction=True)
def test_while_a_plan_is_prepared_the_click_does_not_wait_but_the_publication_does(
    tax_list, uploader, approver, monkeypatch
):
    monkeypatch.setattr(queued, "IN_REQUEST_ROWS", 0)  # a big batch: the click only queues it
    batch = load(tax_list, csv_bytes(company(1), company(2)), user=uploader)
    settings = connection.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"], host=settings["HOST"], port=settings["PORT"], user=settings["USER"]
    ) as preparing:  # holds the batch as prepare_publication does while it writes the plan
        preparing.execute(planning.HOLD_BATCH, [batch.pk])
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '1s'")
        assert (
            batches.request_publication(batch_id=batch.pk, approver=approver).status
            == Batch.Status.PUBLISHING
        )
        with pytest.raises(OperationalError, match="lock timeout"):
            publishing.publish_batch(batch_id=batch.pk, approver=approver, queued=True)
    assert publishing.publish_batch(batch_id=batch.pk, approver=approver, queued=True).status == "published"
