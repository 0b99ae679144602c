"""The change feed under concurrent publishes, and bulk exports reconciled with the feed."""

from __future__ import annotations

import csv
import io
import json
import random
import threading
import time

import pytest
from django.db import connection, transaction
from django.test import Client

from lists.models import Change, CreditList, Listing
from lists.services import batches
from lists.services.exports import export_listings, refresh_exports, safe_cell
from lists.services.feed import listing_snapshot, record_changes
from tests.factories import SubjectFactory, valid_uscc
from tests.portal.api_helpers import end_listing, make_key, publish

WRITERS = 4
COMMITS_PER_WRITER = 12


def _write_concurrently(listing_ids: list[int], stop: threading.Event) -> None:
    try:
        rng = random.Random()
        for _ in range(COMMITS_PER_WRITER):
            with transaction.atomic():
                listings = list(Listing.objects.filter(pk__in=rng.sample(listing_ids, 3)))
                record_changes(listings, op="modify", reason="test")
                # Hold the transaction open a while: without the feed lock, a later sequence
                # number would commit first and a reader would skip the earlier one.
                time.sleep(rng.uniform(0.005, 0.04))
    finally:
        connection.close()


def _follow(seen: list[int], done: threading.Event, secret: str, ready: threading.Event) -> None:
    client, after = Client(HTTP_AUTHORIZATION=f"Bearer {secret}"), 0
    try:
        while True:
            ready.set()
            finished = done.is_set()
            page = client.get("/api/v1/changes", {"after": after, "limit": 7}).json()
            seen += [item["seq"] for item in page["items"]]
            after = page["next_after"]
            if finished and not page["items"]:
                return
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_the_feed_is_never_reordered_or_skipped_under_concurrent_publishes() -> None:
    listing_ids = [publish().pk for _ in range(6)]
    done, seen = threading.Event(), []
    _, secret = make_key(["read"], rate_per_minute=100_000)
    ready = threading.Event()
    reader = threading.Thread(target=_follow, args=(seen, done, secret, ready))
    writers = [threading.Thread(target=_write_concurrently, args=(listing_ids, done)) for _ in range(WRITERS)]
    reader.start()
    Client().get("/api/v1/agencies")  # warm up URL and schema imports so the reader polls from the start
    ready.wait(10)
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    done.set()
    reader.join(timeout=60)
    assert seen == sorted(set(seen)), "sequence numbers must be strictly increasing"
    assert seen == list(Change.objects.order_by("seq").values_list("seq", flat=True))
    assert len(seen) == 6 + WRITERS * COMMITS_PER_WRITER * 3


@pytest.mark.django_db
def test_the_feed_reports_next_after_and_data_version(client) -> None:  # type: ignore[no-untyped-def]
    publish()
    publish()
    first = client.get("/api/v1/changes", {"limit": 1}).json()
    rest = client.get("/api/v1/changes", {"after": first["next_after"]}).json()
    assert first["data_version"] == rest["data_version"] == rest["next_after"]
    assert [c["seq"] for c in first["items"] + rest["items"]] == list(
        Change.objects.values_list("seq", flat=True)
    )
    assert rest["items"][0]["data"]["listing_id"] == rest["items"][0]["listing_id"]
    assert client.get("/api/v1/changes", {"after": "x"}).status_code == 400


def _portal_now() -> dict[int, dict]:
    listings = (
        Listing.objects.in_force()
        .filter(credit_list__is_public=True)
        .select_related("subject", "credit_list")
    )
    return {listing.pk: listing_snapshot(listing) for listing in listings}


def _apply_feed(rows: dict[int, dict], client: Client, after: int) -> dict[int, dict]:
    while True:
        page = client.get("/api/v1/changes", {"after": after, "limit": 2}).json()
        for change in page["items"]:
            if change["data"]["status"] in ("active", "disputed"):
                rows[change["listing_id"]] = change["data"]
            else:
                rows.pop(change["listing_id"], None)
        if not page["items"]:
            return rows
        after = page["next_after"]


@pytest.mark.django_db
def test_an_export_followed_by_the_feed_equals_the_portal(client) -> None:  # type: ignore[no-untyped-def]
    kept, repaired, changed = publish(), publish(), publish()
    export = export_listings(credit_list=None, fmt="jsonl")
    assert export.seq == Change.objects.order_by("-seq").first().seq
    rows = {r["listing_id"]: r for r in map(json.loads, export.file.open("rb").read().decode().splitlines())}
    assert set(rows) == {kept.pk, repaired.pk, changed.pk}

    added = publish(subject=SubjectFactory(name='=HYPERLINK("http://x")有限公司'))
    end_listing(repaired)
    with transaction.atomic():
        changed.reason = "更正后的理由"
        changed.save(update_fields=["reason"])
        record_changes([changed], op="modify", reason="correct")

    followed = _apply_feed(rows, client, export.seq)
    assert followed == _portal_now()
    assert set(followed) == {kept.pk, changed.pk, added.pk}


@pytest.mark.django_db
def test_listings_a_batch_adds_reach_the_feed_as_published(client) -> None:  # type: ignore[no-untyped-def]
    # Their changes keep no document of their own (see Change.data): the feed shows the rows'.
    rows = [
        f"测试{n}贸易有限公司,{valid_uscc(n)},税稽罚〔2020〕{n}号,虚开增值税专用发票,{decided},{expiry}"
        for n, decided, expiry in ((1, "2025-03-01", ""), (2, "2020-01-01", "2021-01-01"))
    ]
    payload = ("名称,统一社会信用代码,文书号,列入原因,决定日期,失效日期\n" + "\n".join(rows)).encode()
    tax = CreditList.objects.get(code="TAX_MAJOR_VIOLATION")
    batch = batches.receive_batch(
        credit_list=tax, payload=payload, filename="a.csv", mode="incremental", origin="command", actor="test"
    )
    batches.process_batch(batch_id=batch.pk)
    batches.publish_batch(batch_id=batch.pk, waived_by="test")

    items = client.get("/api/v1/changes").json()["items"]
    listings = Listing.objects.select_related("subject", "credit_list").in_bulk(
        [i["listing_id"] for i in items]
    )
    assert [i["op"] for i in items] == ["add", "add"]
    assert [i["data"] for i in items] == [listing_snapshot(listings[i["listing_id"]]) for i in items]
    assert {i["data"]["status"] for i in items} == {"active", "expired"}
    assert _apply_feed({}, client, 0) == _portal_now()


@pytest.mark.django_db
def test_exports_download_with_etag_and_304(client) -> None:  # type: ignore[no-untyped-def]
    publish()
    refresh_exports()
    response = client.get("/api/v1/exports/TAX_MAJOR_VIOLATION.jsonl")
    assert response.status_code == 200
    etag = response["ETag"]
    body = b"".join(response.streaming_content)
    assert int(response["X-Data-Version"]) == Change.objects.order_by("-seq").first().seq
    import hashlib

    assert etag == f'"{hashlib.sha256(body).hexdigest()}"'
    assert client.get("/api/v1/exports/TAX_MAJOR_VIOLATION.jsonl", HTTP_IF_NONE_MATCH=etag).status_code == 304
    listed = client.get("/api/v1/exports").json()
    assert {"all", "TAX_MAJOR_VIOLATION"} <= {e["list"] for e in listed}
    assert refresh_exports() == []  # nothing moved: nothing regenerated
    assert client.get("/api/v1/exports/all.pdf").status_code == 404


@pytest.mark.django_db
def test_csv_exports_are_safe_against_formula_injection() -> None:
    publish(subject=SubjectFactory(name="=1+2有限公司"), reason="@SUM(A1)")
    export = export_listings(credit_list=None, fmt="csv")
    text = export.file.open("rb").read().decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["name"] == "'=1+2有限公司" and rows[0]["reason"] == "'@SUM(A1)"
    assert export.rows == 1
    assert safe_cell("-1") == "'-1" and safe_cell("平安") == "平安"


@pytest.mark.django_db
def test_the_export_task_exports_only_lists_that_moved() -> None:
    from lists import tasks

    publish()
    first = tasks.refresh_exports()
    assert first >= 4  # the moved list and "all", in two formats (untouched lists get a first, empty export)
    assert tasks.refresh_exports() == 0
    publish()
    assert tasks.refresh_exports() == 4
