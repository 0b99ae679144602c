"""Restrictions follow the catalogue: a new edition recomputes them and tells the feed, once."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from lists import tasks
from lists.models import (
    CatalogueEdition,
    Change,
    CreditList,
    Listing,
    Measure,
    PendingRecompute,
    Restriction,
    Subject,
)
from lists.services.checks import check_restriction
from lists.services.measures import apply_measures
from lists.services.reference import FIXTURES, load_reference
from tests.factories import ListingFactory, valid_uscc

ROOT = Path(__file__).resolve().parents[2]
LIST_CODE = "TAX_MAJOR_VIOLATION"


@pytest.fixture(autouse=True, scope="module")
def _restore_reference(django_db_blocker) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Leave the reference data in place for later modules: transactional tests here flush it."""
    yield
    with django_db_blocker.unblock():
        if not CreditList.objects.exists():
            call_command("load_reference", verbosity=0)


def new_edition(code: str, *, drop: str) -> CatalogueEdition:
    """Make a copy of the current edition without the measure `drop` the current one."""
    old = CatalogueEdition.objects.get(is_current=True)
    CatalogueEdition.objects.filter(pk=old.pk).update(is_current=False)
    edition = CatalogueEdition.objects.create(code=code, source_sha256="0" * 64, is_current=True)
    for measure in Measure.objects.filter(edition=old).exclude(code=drop):
        lists = list(CreditList.objects.filter(measures=measure))  # no prefetch: set() would trust it
        measure.pk, measure.edition = None, edition
        measure.save()
        measure.triggered_by.set(lists)
    return edition


def live() -> set[tuple[int, str, str]]:
    """Return the live restrictions as (listing, measure code, edition code)."""
    rows = Restriction.objects.filter(lifted_at__isnull=True).values_list(
        "listing_id", "measure__code", "measure__edition__code"
    )
    return set(rows)


def expected_live() -> set[tuple[int, str, str]]:
    """Return what the catalogue says should be live, computed without the service's SQL."""
    result = set()
    for measure in Measure.objects.current().prefetch_related("triggered_by"):
        listings = Listing.objects.in_force().filter(credit_list__in=measure.triggered_by.all())
        if measure.subject_types:
            listings = listings.filter(subject__subject_type__in=measure.subject_types)
        result |= {(pk, measure.code, measure.edition.code) for pk in listings.values_list("pk", flat=True)}
    return result


@pytest.mark.django_db
def test_a_new_catalogue_edition_enqueues_a_background_recompute(
    tmp_path, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    ListingFactory()
    catalogue = json.loads((FIXTURES / "catalogue.json").read_text())
    catalogue["meta"]["edition"] = "test-edition-2"
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(catalogue, ensure_ascii=False))

    with django_capture_on_commit_callbacks() as callbacks:
        summary = load_reference(catalogue_path=path)
    assert summary.is_new_edition and len(callbacks) == 1

    with django_capture_on_commit_callbacks() as callbacks:
        assert not load_reference(catalogue_path=path).is_new_edition
    assert callbacks == [], "loading the same edition again recomputes nothing"


@pytest.mark.django_db
def test_until_a_new_edition_is_recomputed_checks_answer_under_it(
    tmp_path, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    listing = ListingFactory()
    apply_measures()
    catalogue = json.loads((FIXTURES / "catalogue.json").read_text())
    catalogue["meta"]["edition"] = "test-edition-3"
    catalogue["measures"] = [m for m in catalogue["measures"] if m["code"] != "M_EXIT_RESTRICTION_TAX"]
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(catalogue, ensure_ascii=False))
    before = {r["measure"] for r in check_restriction(subject=listing.subject, measure=None).restrictions}
    assert "M_EXIT_RESTRICTION_TAX" in before

    with django_capture_on_commit_callbacks():
        load_reference(catalogue_path=path)
    assert PendingRecompute.objects.filter(reason="catalogue").exists()
    during = check_restriction(subject=listing.subject, measure=None).restrictions
    assert {r["measure"] for r in during} == before - {"M_EXIT_RESTRICTION_TAX"}
    kept = check_restriction(
        subject=listing.subject, measure=Measure.objects.current().get(code="M_PRUDENT_LENDING")
    )
    assert not kept.allowed, "a measure the new edition keeps still restricts while the recompute is pending"

    call_command("apply_measures", stdout=io.StringIO())  # as the task does, or an operator
    assert not PendingRecompute.objects.exists(), "a full recompute settles what was pending"
    assert check_restriction(subject=listing.subject, measure=None).restrictions == during


@pytest.mark.django_db
def test_the_recompute_moves_restrictions_to_the_new_edition_and_writes_the_feed_once() -> None:
    taxed = [ListingFactory() for _ in range(3)]
    other = ListingFactory(credit_list=CreditList.objects.get(code="SPC_DEFAULTER"))
    ended = ListingFactory(status=Listing.Status.EXPIRED, ended_at=timezone.now())
    apply_measures()
    dropped = (
        Measure.objects.current()
        .filter(triggered_by__code=LIST_CODE)
        .exclude(triggered_by__code="SPC_DEFAULTER")[0]
    )
    new_edition("test-2", drop=dropped.code)

    kept = dict(
        Restriction.objects.filter(listing=other, lifted_at__isnull=True).values_list("pk", "starts_on")
    )

    result = tasks.apply_measures(reason="catalogue", feed_reason="catalogue")

    assert live() == expected_live() != set()
    assert all(edition == "test-2" for _, _, edition in live())
    assert not any(code == dropped.code for _, code, _ in live())
    carried = Restriction.objects.filter(listing=other, lifted_at__isnull=True)
    assert dict(carried.values_list("pk", "starts_on")) == kept, "unchanged measures carry over as they are"
    changes = Change.objects.filter(reason="catalogue")
    assert result["changes"] == changes.count() == 3
    assert {c.listing_id for c in changes} == {t.pk for t in taxed}, "only listings whose measures changed"
    assert ended.pk not in {c.listing_id for c in changes}
    assert all(c.op == "modify" for c in changes)

    again = tasks.apply_measures(reason="catalogue", feed_reason="catalogue")
    assert again == {"lifted": 0, "derived": 0, "changes": 0}
    assert Change.objects.filter(reason="catalogue").count() == 3


def _bulk_listings(count: int) -> None:
    """Create `count` subjects with one listing each, in bulk (names are not indexed: not searched)."""
    now = timezone.now()
    subjects = Subject.objects.bulk_create(
        Subject(subject_type="legal_person", name=f"中断测试{n}有限公司", uscc=valid_uscc(900_000 + n))
        for n in range(count)
    )
    credit_list = CreditList.objects.get(code=LIST_CODE)
    Listing.objects.bulk_create(
        Listing(
            subject=s,
            credit_list=credit_list,
            source_key=f"k{n}",
            content_hash=f"{n:064x}",
            decided_on=now.date(),
            published_on=now.date(),
            first_seen_at=now,
            last_seen_at=now,
            last_changed_at=now,
        )  # fmt: skip
        for n, s in enumerate(subjects)
    )


def _manage(*args: str) -> subprocess.Popen[bytes]:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _waiting_backend(other: psycopg.Connection, worker: subprocess.Popen[bytes], timeout: float = 120) -> int:
    """Return the pid of the backend blocked on our row lock inside the recompute."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise AssertionError(f"the recompute ended early: {worker.communicate()}")
        # pg_stat_activity is a per-transaction snapshot: refresh it, we are inside one.
        other.execute("SELECT pg_stat_clear_snapshot()")
        row = other.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock' "
            "AND query LIKE %s",
            [connection.settings_dict["NAME"], "%lists_restriction%"],
        ).fetchone()
        if row:
            return int(row[0])
        time.sleep(0.2)
    worker.kill()
    raise AssertionError("the recompute never reached the locked row")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_recompute_killed_mid_way_converges_on_rerun_with_no_duplicate_changes() -> None:
    if not CreditList.objects.exists():  # an earlier transactional test flushed it
        call_command("load_reference", verbosity=0)
    _bulk_listings(3000)
    apply_measures()
    before = live()
    in_force_measure = Restriction.objects.filter(lifted_at__isnull=True).values_list(
        "measure__code", flat=True
    )
    new_edition("test-interrupted", drop=in_force_measure[0])
    db = connection.settings_dict
    dsn = f"host={db['HOST']} port={db['PORT'] or 5432} user={db['USER']} dbname={db['NAME']}"

    with psycopg.connect(dsn) as other:
        # Hold one restriction row: the recompute updates thousands of rows, then waits on it.
        other.execute("SELECT id FROM lists_restriction ORDER BY id DESC LIMIT 1 FOR UPDATE")
        worker = _manage("apply_measures")
        backend = _waiting_backend(other, worker)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        # The server notices a dead client at its next read; make it notice now.
        other.execute("SELECT pg_terminate_backend(%s)", [backend])
        other.rollback()

    assert worker.returncode == -signal.SIGKILL
    assert live() == before, "the killed run left nothing half-done"
    assert not Change.objects.filter(reason="catalogue").exists()

    rerun = _manage("apply_measures")
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err.decode()

    assert live() == expected_live() != set()
    changes = Counter(Change.objects.filter(reason="catalogue").values_list("listing_id", flat=True))
    assert len(changes) == 3000 and set(changes.values()) == {1}

    third = _manage("apply_measures")
    out, _ = third.communicate(timeout=300)
    assert b"0 lifted, 0 derived, 0 feed changes" in out
    assert Change.objects.filter(reason="catalogue").count() == 3000


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (  # the listing is another subject's
            "INSERT INTO lists_restriction (subject_id, listing_id, measure_id, starts_on, lifted_reason) "
            "SELECT o.id, l.id, m.id, CURRENT_DATE, '' FROM lists_listing l, lists_subject o, lists_measure m "
            "WHERE l.id = %(listing)s AND o.id = %(other)s AND m.id = %(unused)s",
            "not its subject's",
        ),
        (
            "INSERT INTO lists_restriction (subject_id, listing_id, measure_id, starts_on, lifted_reason) "
            "VALUES (%(subject)s, %(listing)s, -1, CURRENT_DATE, '')",
            "measure that does not exist",
        ),
        (
            "UPDATE lists_restriction SET measure_id = -1 WHERE id = %(restriction)s",
            "measure that does not",
        ),
        ("DELETE FROM lists_listing WHERE id = %(listing)s", "still has restrictions"),
        ("DELETE FROM lists_measure WHERE id = %(measure)s", "still has restrictions"),
    ],
)
def test_the_database_keeps_restrictions_pointing_at_their_listing_subject_and_measure(sql, message) -> None:  # type: ignore[no-untyped-def]
    listing = ListingFactory(credit_list=CreditList.objects.get(code=LIST_CODE))
    apply_measures(listing_ids=[listing.pk])
    other = ListingFactory().subject
    restriction = Restriction.objects.filter(listing=listing).first()
    params = {
        "listing": listing.pk,
        "subject": listing.subject_id,
        "other": other.pk,
        "restriction": restriction.pk,
        "measure": restriction.measure_id,
        "unused": Measure.objects.exclude(restrictions__listing=listing).first().pk,
    }
    with pytest.raises(IntegrityError, match=message), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
