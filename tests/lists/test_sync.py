"""Sources synced from a real HTTP server started by the test on 127.0.0.1 (no mocked client)."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
import redis
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from lists import tasks
from lists.models import Batch, Change, CreditList, Listing, Source, Subject
from lists.services.sync import (
    SYNC_LOCK_CLASS,
    FeedUnavailable,
    SyncFailed,
    distrust_source,
    sync_due_sources,
    sync_source,
    trust_source,
)
from tests.factories import UserFactory, valid_uscc

LIST_CODE = "TAX_MAJOR_VIOLATION"

Reply = tuple[int, bytes] | Callable[[], tuple[int, bytes]]


@dataclass
class FeedServer:
    """A local agency feed: path → reply; records every request it got."""

    routes: dict[str, Reply] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    base: str = ""

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture(autouse=True, scope="module")
def _restore_reference(django_db_blocker) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Leave the reference data in place for later modules: transactional tests here flush it."""
    yield
    with django_db_blocker.unblock():
        if not CreditList.objects.exists():
            call_command("load_reference", verbosity=0)


@pytest.fixture(autouse=True)
def _reference(django_db_blocker) -> None:  # type: ignore[no-untyped-def]
    """Reload the reference data that an earlier transactional test flushed away."""
    # Transactional tests: each publish commits, as in production. (Publishing twice inside one
    # outer transaction trips over the publisher's ON COMMIT DROP temp tables.)
    with django_db_blocker.unblock():
        if not CreditList.objects.exists():
            call_command("load_reference", verbosity=0)


@pytest.fixture
def feed() -> Iterator[FeedServer]:
    server_state = FeedServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            parts = urlsplit(self.path)
            server_state.requests.append(
                {"path": parts.path, "query": parse_qs(parts.query), "headers": dict(self.headers)}
            )
            reply = server_state.routes.get(parts.path + ("?" + parts.query if parts.query else ""))
            reply = reply or server_state.routes.get(parts.path, (404, b"not found"))
            status, body = reply() if callable(reply) else reply
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (the timeout test)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    server_state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield server_state
    httpd.shutdown()
    httpd.server_close()


def record(n: int, *, reason: str = "虚开增值税专用发票") -> dict[str, str]:
    return {
        "企业名称": f"深圳同步测试{n}贸易有限公司",
        "统一社会信用代码": valid_uscc(700_000 + n),
        "文书号": f"深税稽罚〔2025〕{n}号",
        "列入原因": reason,
        "决定日期": "2025-03-01",
    }


def page(records: list[dict[str, str]], **extra: Any) -> tuple[int, bytes]:
    return 200, json.dumps({"results": records, **extra}, ensure_ascii=False).encode()


def make_source(feed: FeedServer, path: str = "/feed", **fields: Any) -> Source:
    fields.setdefault("mode", Source.Mode.SNAPSHOT)
    fields.setdefault("timeout_seconds", 5)
    trusted = fields.pop("trusted", True)
    source = Source.objects.create(
        credit_list=CreditList.objects.get(code=LIST_CODE), url=feed.url(path), **fields
    )
    if trusted:
        source.is_trusted, source.trusted_by, source.trusted_at = True, UserFactory(), timezone.now()
        source.save()
    return source


def in_force() -> dict[str, str]:
    """Return the published in-force listings of the list: source key → content hash."""
    listings = Listing.objects.filter(credit_list__code=LIST_CODE).in_force()
    return dict(listings.values_list("source_key", "content_hash"))


def publish_initial(feed: FeedServer, count: int, **fields: Any) -> Source:
    """Publish `count` records through a trusted snapshot source and return it."""
    feed.routes["/feed"] = page([record(n) for n in range(count)])
    source = make_source(feed, **fields)
    batch = sync_source(source_id=source.pk)
    assert batch is not None and batch.status == Batch.Status.PUBLISHED, batch and batch.error
    assert len(in_force()) == count
    return source


@pytest.mark.django_db(transaction=True)
def test_a_healthy_incremental_feed_follows_pages_and_advances_its_cursor(feed, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("XY_TEST_FEED_TOKEN", "Bearer s3cret")
    feed.routes["/feed"] = page([record(1), record(2)], next="/feed/2")
    feed.routes["/feed/2"] = page([record(3)], cursor="2025-06-01T00:00:00Z")
    source = make_source(
        feed, mode=Source.Mode.INCREMENTAL, auth_header="Authorization", auth_env_var="XY_TEST_FEED_TOKEN"
    )

    first = sync_source(source_id=source.pk)

    assert first is not None and first.status == Batch.Status.PUBLISHED
    assert first.origin == Batch.Origin.SYNC and first.source_id == source.pk
    assert first.approval_waived_by.startswith("trusted source (waived by staff")
    assert len(in_force()) == 3
    assert all(r["headers"]["Authorization"] == "Bearer s3cret" for r in feed.requests)
    source.refresh_from_db()
    assert (source.health, source.cursor, source.consecutive_failures) == (
        "healthy",
        "2025-06-01T00:00:00Z",
        0,
    )
    assert source.last_success_at and source.credit_list.last_synced_at

    # The next run asks only for what changed since the cursor; an incremental feed removes nothing.
    feed.requests.clear()
    feed.routes["/feed?updated_since=2025-06-01T00%3A00%3A00Z"] = page(
        [record(4), record(2, reason="拒不履行纳税义务")], cursor="2025-06-02T00:00:00Z"
    )
    second = sync_source(source_id=source.pk)

    assert feed.requests[0]["query"] == {"updated_since": ["2025-06-01T00:00:00Z"]}
    assert second is not None and second.counts["add"] == 1 and second.counts["change"] == 1
    assert len(in_force()) == 4
    assert Change.objects.filter(batch=second).count() == 2
    source.refresh_from_db()
    assert source.cursor == "2025-06-02T00:00:00Z"


@pytest.mark.django_db(transaction=True)
def test_an_untrusted_source_leaves_its_batch_waiting_for_approval(feed) -> None:  # type: ignore[no-untyped-def]
    feed.routes["/feed"] = page([record(1)])
    source = make_source(feed, trusted=False)

    batch = sync_source(source_id=source.pk)

    assert batch is not None and batch.status == Batch.Status.READY
    assert in_force() == {}
    assert Source.objects.get(pk=source.pk).health == Source.Health.HEALTHY


@pytest.mark.django_db(transaction=True)
def test_a_snapshot_feed_removes_what_the_agency_removed(feed) -> None:  # type: ignore[no-untyped-def]
    source = publish_initial(feed, 4)
    feed.routes["/feed"] = page([record(n) for n in range(3)] + [record(9)])

    batch = sync_source(source_id=source.pk)

    assert batch is not None and batch.status == Batch.Status.PUBLISHED
    assert (batch.counts["add"], batch.counts["remove"], batch.counts["unchanged"]) == (1, 1, 3)
    assert len(in_force()) == 4
    assert Change.objects.filter(batch=batch, op="remove").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_csv_snapshot_feed_is_read_like_an_upload(feed) -> None:  # type: ignore[no-untyped-def]
    rows = [",".join(record(n).values()) for n in range(2)]
    feed.routes["/list.csv"] = (200, (",".join(record(0)) + "\n" + "\n".join(rows) + "\n").encode("gbk"))
    source = make_source(feed, path="/list.csv", format=Source.Format.CSV)

    batch = sync_source(source_id=source.pk)

    assert batch is not None and batch.status == Batch.Status.PUBLISHED, batch and batch.error
    assert len(in_force()) == 2


@pytest.mark.django_db(transaction=True)
def test_server_errors_mark_the_source_failing_then_unhealthy_and_keep_published_data(feed) -> None:  # type: ignore[no-untyped-def]
    source = publish_initial(feed, 3)
    published, changes = in_force(), Change.objects.count()
    feed.routes["/feed"] = (503, b"maintenance")

    with pytest.raises(FeedUnavailable, match="HTTP 503"):
        sync_source(source_id=source.pk, final_attempt=False)
    assert Source.objects.get(pk=source.pk).health == Source.Health.FAILING

    with pytest.raises(FeedUnavailable):
        sync_source(source_id=source.pk)
    source.refresh_from_db()
    assert (source.health, source.consecutive_failures) == (Source.Health.UNHEALTHY, 2)
    assert "HTTP 503" in source.last_error
    assert in_force() == published and Change.objects.count() == changes
    assert Source.objects.unhealthy().filter(pk=source.pk).exists()

    feed.routes["/feed"] = page([record(n) for n in range(3)])
    sync_source(source_id=source.pk)
    source.refresh_from_db()
    assert (source.health, source.consecutive_failures, source.last_error) == ("healthy", 0, "")


@pytest.mark.django_db(transaction=True)
def test_the_task_retries_an_unreadable_feed_with_backoff_then_gives_up(feed) -> None:  # type: ignore[no-untyped-def]
    feed.routes["/feed"] = (500, b"boom")
    source = make_source(feed)

    result = tasks.sync_source.apply(args=[source.pk])  # eager: retries run at once, no countdown

    assert result.failed()
    assert len(feed.requests) == tasks.sync_source.max_retries + 1
    source.refresh_from_db()
    assert source.health == Source.Health.UNHEALTHY
    assert source.consecutive_failures == tasks.sync_source.max_retries + 1


@pytest.mark.django_db(transaction=True)
def test_a_hanging_server_times_out_and_marks_the_source_unhealthy(feed) -> None:  # type: ignore[no-untyped-def]
    source = publish_initial(feed, 2)
    published = in_force()
    feed.routes["/feed"] = lambda: (time.sleep(4), page([]))[1]
    Source.objects.filter(pk=source.pk).update(timeout_seconds=1)

    started = time.monotonic()
    with pytest.raises(FeedUnavailable, match="cannot read"):
        sync_source(source_id=source.pk)

    assert time.monotonic() - started < 3
    source.refresh_from_db()
    assert source.health == Source.Health.UNHEALTHY and "timed out" in source.last_error
    assert in_force() == published


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>502 Bad Gateway</html>", "not valid JSON"),
        (b'{"results": [{"a": 1}', "not valid JSON"),
        (b'{"unexpected": []}', "has none of the keys"),
        (b'{"results": ["a", "b"]}', "not a list of objects"),
        (b'"just a string"', "neither a list nor an object"),
    ],
)
@pytest.mark.django_db(transaction=True)
def test_garbage_pages_fail_the_run_and_change_nothing(feed, body, problem) -> None:  # type: ignore[no-untyped-def]
    source = publish_initial(feed, 2)
    published, batches = in_force(), Batch.objects.count()
    feed.routes["/feed"] = (200, body)

    with pytest.raises(FeedUnavailable, match=problem):
        sync_source(source_id=source.pk)

    source.refresh_from_db()
    assert source.health == Source.Health.UNHEALTHY and problem in source.last_error
    assert in_force() == published and Batch.objects.count() == batches


@pytest.mark.django_db(transaction=True)
def test_a_malformed_second_page_fails_the_whole_run(feed) -> None:  # type: ignore[no-untyped-def]
    source = publish_initial(feed, 2)
    feed.routes["/feed"] = page([record(0)], next="/feed/2")
    feed.routes["/feed/2"] = (200, b"garbage")

    with pytest.raises(FeedUnavailable, match="page 2 is not valid JSON"):
        sync_source(source_id=source.pk)
    assert len(in_force()) == 2, "a snapshot of only the first page must never remove the rest"


@pytest.mark.django_db(transaction=True)
def test_a_half_empty_snapshot_trips_the_safety_stop(feed) -> None:  # type: ignore[no-untyped-def]
    source = publish_initial(feed, 10)
    published, changes = in_force(), Change.objects.count()
    feed.routes["/feed"] = page([record(n) for n in range(4)])

    with pytest.raises(SyncFailed, match="safety stop"):
        sync_source(source_id=source.pk)

    held = Batch.objects.filter(source=source).first()
    assert held is not None and held.status == Batch.Status.FAILED
    assert "safety stop: the snapshot keeps 4 of 10" in held.error
    source.refresh_from_db()
    assert source.health == Source.Health.UNHEALTHY and "safety stop" in source.last_error
    assert in_force() == published and Change.objects.count() == changes


@pytest.mark.django_db(transaction=True)
def test_an_empty_snapshot_trips_the_safety_stop_without_a_batch(feed) -> None:  # type: ignore[no-untyped-def]
    source = publish_initial(feed, 3)
    batches = Batch.objects.count()
    feed.routes["/feed"] = page([])

    with pytest.raises(SyncFailed, match="keeps 0 of 3"):
        sync_source(source_id=source.pk)
    assert Batch.objects.count() == batches and len(in_force()) == 3


@pytest.mark.django_db(transaction=True)
def test_a_feed_longer_than_the_page_cap_fails_instead_of_truncating(feed) -> None:  # type: ignore[no-untyped-def]
    for n in range(5):
        feed.routes[f"/p{n}"] = page([record(n)], next=f"/p{n + 1}")
    source = make_source(feed, path="/p0", max_pages=3)

    with pytest.raises(SyncFailed, match="more than 3 pages"):
        sync_source(source_id=source.pk)
    assert in_force() == {} and len(feed.requests) == 3


@pytest.mark.django_db(transaction=True)
def test_a_missing_secret_fails_without_calling_the_feed(feed) -> None:  # type: ignore[no-untyped-def]
    source = make_source(feed, auth_header="X-Api-Key", auth_env_var="XY_TEST_UNSET_VARIABLE")

    with pytest.raises(SyncFailed, match="XY_TEST_UNSET_VARIABLE"):
        sync_source(source_id=source.pk)
    assert feed.requests == []


@pytest.mark.django_db(transaction=True)
def test_a_source_already_syncing_is_not_synced_twice_at_once(feed) -> None:  # type: ignore[no-untyped-def]
    feed.routes["/feed"] = page([record(1)])
    source = make_source(feed)
    settings = connection.settings_dict
    dsn = f"host={settings['HOST']} port={settings['PORT'] or 5432} user={settings['USER']} dbname={settings['NAME']}"
    with psycopg.connect(dsn) as other:  # another worker's run of the same source
        other.execute("SELECT pg_advisory_lock(%s, %s)", [SYNC_LOCK_CLASS, source.pk])
        assert sync_source(source_id=source.pk) is None
        assert feed.requests == []
    assert sync_source(source_id=source.pk) is not None


@pytest.mark.django_db(transaction=True)
def test_beat_enqueues_one_task_per_due_source_on_the_sync_queue(feed) -> None:  # type: ignore[no-untyped-def]
    broker = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    broker.delete("sync")
    now = timezone.now()
    due = make_source(feed, timeout_seconds=7)
    later_list = CreditList.objects.get(code="SAMR_SERIOUS_ILLEGAL")
    Source.objects.create(
        credit_list=later_list, url=feed.url("/x"), next_sync_at=now + dt.timedelta(hours=2)
    )

    assert sync_due_sources(now=now) == [due.pk]

    messages = [json.loads(m) for m in broker.lrange("sync", 0, -1)]
    broker.delete("sync")
    assert [m["headers"]["task"] for m in messages] == ["lists.tasks.sync_source"]
    hard, soft = messages[0]["headers"]["timelimit"]
    assert soft == 7 * 20 + django_settings.SYNC_PROCESS_SECONDS and hard == soft + 60
    due.refresh_from_db()
    assert due.next_sync_at == now + dt.timedelta(minutes=due.schedule_minutes)
    assert sync_due_sources(now=now) == [], "a queued source is not queued again before its next run"
    assert sync_due_sources(now=due.next_sync_at) == [due.pk]
    broker.delete("sync")


@pytest.mark.django_db(transaction=True)
def test_a_source_without_recent_success_is_stale(feed) -> None:  # type: ignore[no-untyped-def]
    source = make_source(feed, schedule_minutes=60)
    now = timezone.now()
    assert source.is_stale and list(Source.objects.overdue(now)) == [source]

    Source.objects.filter(pk=source.pk).update(last_success_at=now - dt.timedelta(minutes=90))
    source.refresh_from_db()
    assert not source.is_stale and not Source.objects.overdue(now).exists()

    Source.objects.filter(pk=source.pk).update(last_success_at=now - dt.timedelta(minutes=121))
    source.refresh_from_db()
    assert source.is_stale and Source.objects.overdue(now).exists()


@pytest.mark.django_db(transaction=True)
def test_the_demo_sources_sync_from_the_portals_own_demo_feed(live_server, settings) -> None:  # type: ignore[no-untyped-def]
    settings.DEMO_FEED_ENABLED = True
    call_command("seed_demo_sources", "--base-url", live_server.url, stdout=None)
    source = Source.objects.get(credit_list__code="ADMIN_LICENCE")

    batch = sync_source(source_id=source.pk)

    assert batch is not None and batch.status == Batch.Status.PUBLISHED, batch and batch.error
    assert batch.counts["add"] == 40
    assert batch.approval_waived_by.startswith("trusted source (waived by demo-sync-admin")
    names = Listing.objects.filter(credit_list=source.credit_list).values_list("subject__name", flat=True)
    assert all(name.startswith("演示") for name in names)
    assert not Subject.objects.filter(listings__credit_list=source.credit_list, is_synthetic=False).exists()
    untrusted = Source.objects.get(credit_list__code=LIST_CODE)
    assert sync_source(source_id=untrusted.pk).status == Batch.Status.READY


@pytest.mark.django_db
def test_the_demo_feed_is_off_unless_enabled(client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.DEBUG, settings.DEMO_FEED_ENABLED = False, False
    assert client.get("/demo-feed/ADMIN_LICENCE/").status_code == 404
    settings.DEMO_FEED_ENABLED = True
    first = client.get("/demo-feed/ADMIN_LICENCE/?generation=5").json()
    assert first["total_pages"] == 2 and len(first["results"]) == 20
    assert first == client.get("/demo-feed/ADMIN_LICENCE/?generation=5").json(), "deterministic"
    second = client.get("/demo-feed/ADMIN_LICENCE/" + first["next"]).json()
    assert second["page"] == 2 and "next" not in second


@pytest.mark.django_db
def test_staff_see_their_sources_health_and_staleness(
    client, feed, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    from agencies.models import Membership
    from tests.factories import MembershipFactory

    source = make_source(feed)
    Source.objects.filter(pk=source.pk).update(health="unhealthy", last_error="HTTP 503 from the agency")
    admin = MembershipFactory(agency=source.credit_list.agency, role=Membership.Role.ADMIN).user
    client.force_login(admin)

    page = client.get("/staff/sources/")

    assert page.status_code == 200
    html = page.content.decode()
    assert LIST_CODE in html and "HTTP 503 from the agency" in html and "Stale" in html
    with django_capture_on_commit_callbacks() as callbacks:
        assert client.post(f"/staff/sources/{source.pk}/sync/").status_code == 302
    assert len(callbacks) == 1


@pytest.mark.django_db
def test_trusting_a_source_records_who_waived_approval_and_when(feed) -> None:  # type: ignore[no-untyped-def]
    source = make_source(feed, trusted=False)
    admin = UserFactory()

    trusted = trust_source(source_id=source.pk, user=admin)
    assert trusted.is_trusted and trusted.trusted_by == admin and trusted.trusted_at is not None

    untrusted = distrust_source(source_id=source.pk)
    assert (untrusted.is_trusted, untrusted.trusted_by, untrusted.trusted_at) == (False, None, None)


@pytest.mark.django_db(transaction=True)
def test_an_unchanged_feed_makes_no_new_batch(feed) -> None:  # type: ignore[no-untyped-def]
    feed.routes["/feed"] = page([record(1), record(2)])
    source = make_source(feed, trusted=False)
    first = sync_source(source_id=source.pk)
    assert first is not None and first.status == Batch.Status.READY

    assert sync_source(source_id=source.pk) is None, "the same bytes again: nothing to approve twice"
    assert Batch.objects.filter(source=source).count() == 1
    assert Source.objects.get(pk=source.pk).health == Source.Health.HEALTHY

    feed.routes["/feed"] = page([record(1), record(2), record(3)])
    assert sync_source(source_id=source.pk) is not None
    assert Batch.objects.filter(source=source).count() == 2
