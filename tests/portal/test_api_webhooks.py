"""Watchlists and signed webhooks, delivered to a local receiver started by the test."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.utils import timezone

from lists.models import CreditList, Listing, WebhookDelivery
from lists.services import batches, webhooks
from lists.services.feed import listing_snapshot
from tests.factories import SubjectFactory
from tests.portal.api_helpers import auth, end_listing, make_key, make_person, publish

pytestmark = pytest.mark.django_db


class Receiver:
    """An HTTP server on 127.0.0.1:<free port> that records requests and answers scripted codes."""

    def __init__(self, codes: list[int]) -> None:
        self.codes, self.requests = list(codes), []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.codes.pop(0) if receiver.codes else 200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _make_due() -> None:
    WebhookDelivery.objects.filter(status="pending").update(
        next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
    )


def _setup(client, url: str):  # type: ignore[no-untyped-def]
    _, secret = make_key(["read"])
    watched = SubjectFactory(name="成都被关注建筑工程有限公司")
    by_name = publish(subject=SubjectFactory(name="南京按名称关注贸易有限公司"))
    person, pid = make_person(9, name="赵敏")
    watchlist = client.post(
        "/api/v1/watchlists",
        {
            "name": "suppliers",
            "items": [
                {"identifier": watched.uscc},
                {"name": "南京按名称关注贸易有限公司"},
                {"identifier": pid},
            ],
        },
        content_type="application/json",
        **auth(secret),
    ).json()
    assert pid not in json.dumps(watchlist)
    hook = client.post(
        "/api/v1/webhooks",
        {"url": url, "watchlist": watchlist["id"]},
        content_type="application/json",
        **auth(secret),
    ).json()
    return secret, hook, watched, by_name, person


def test_changes_to_watched_subjects_are_delivered_signed_with_retries(client) -> None:  # type: ignore[no-untyped-def]
    with Receiver([500]) as receiver:
        secret, hook, watched, by_name, person = _setup(client, receiver.url)
        added = publish(subject=watched)
        publish()  # not watched
        end_listing(by_name)
        person_listing = publish(subject=person)

        assert webhooks.dispatch_webhooks() == 1
        assert webhooks.dispatch_webhooks() == 0  # the cursor moved: nothing twice
        assert webhooks.deliver_due_webhooks() == 0  # the receiver answered 500
        delivery = WebhookDelivery.objects.get()
        assert (delivery.status, delivery.attempts, delivery.response_code) == ("pending", 1, 500)
        assert delivery.next_attempt_at > timezone.now() + dt.timedelta(seconds=20)

        _make_due()
        assert webhooks.deliver_due_webhooks() == 1
        headers, body = receiver.requests[-1]
        assert webhooks.verify_signature(hook["secret"], body, headers[webhooks.SIGNATURE_HEADER])
        assert not webhooks.verify_signature("wrong", body, headers[webhooks.SIGNATURE_HEADER])
        assert not webhooks.verify_signature(hook["secret"], body + b" ", headers[webhooks.SIGNATURE_HEADER])
        changes = json.loads(body)["changes"]
        assert [(c["listing_id"], c["op"]) for c in changes] == [
            (added.pk, "add"),
            (by_name.pk, "remove"),
            (person_listing.pk, "add"),
        ]
        log = client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", **auth(secret)).json()
        assert log[0]["status"] == "delivered" and [a["code"] for a in log[0]["log"]] == [500, 200]


def test_a_listing_a_batch_adds_to_a_watched_subject_is_delivered_as_published(client) -> None:  # type: ignore[no-untyped-def]
    _, _, watched, _, _ = _setup(client, "http://127.0.0.1:9/hook")
    payload = (
        f"名称,统一社会信用代码,文书号,决定日期\n{watched.name},{watched.uscc},税稽罚〔2025〕7号,2025-03-01\n"
    )
    tax = CreditList.objects.get(code="TAX_MAJOR_VIOLATION")
    batch = batches.receive_batch(
        credit_list=tax,
        payload=payload.encode(),
        filename="a.csv",
        mode="incremental",
        origin="command",
        actor="t",
    )
    batches.process_batch(batch_id=batch.pk)
    batches.publish_batch(batch_id=batch.pk, waived_by="test")

    assert webhooks.dispatch_webhooks() == 1
    (change,) = json.loads(WebhookDelivery.objects.get().body)["changes"]
    listing = Listing.objects.select_related("subject", "credit_list").get(pk=change["listing_id"])
    assert (change["op"], listing.subject_id) == ("add", watched.pk)
    assert change["data"] == listing_snapshot(listing)


def test_a_delivery_can_be_replayed(client) -> None:  # type: ignore[no-untyped-def]
    with Receiver([]) as receiver:
        secret, hook, watched, _, _ = _setup(client, receiver.url)
        publish(subject=watched)
        webhooks.dispatch_webhooks()
        webhooks.deliver_due_webhooks()
        delivery = WebhookDelivery.objects.get()
        url = f"/api/v1/webhooks/{hook['id']}/deliveries/{delivery.pk}/replay"
        other = make_key(["read"])[1]
        assert client.post(url, **auth(other)).status_code == 404
        assert client.post(url, **auth(secret)).json()["status"] == "pending"
        assert webhooks.deliver_due_webhooks() == 1
        assert len(receiver.requests) == 2 and receiver.requests[0][1] == receiver.requests[1][1]
        delivery.refresh_from_db()
        assert delivery.attempts == 2 and delivery.status == "delivered"


def test_a_receiver_that_keeps_failing_is_given_up_with_growing_backoff(client) -> None:  # type: ignore[no-untyped-def]
    with Receiver([503] * webhooks.MAX_ATTEMPTS) as receiver:
        _, _, watched, _, _ = _setup(client, receiver.url)
        publish(subject=watched)
        webhooks.dispatch_webhooks()
        waits = []
        for _ in range(webhooks.MAX_ATTEMPTS):
            _make_due()
            webhooks.deliver_due_webhooks()
            delivery = WebhookDelivery.objects.get()
            if delivery.next_attempt_at:
                waits.append((delivery.next_attempt_at - delivery.last_attempt_at).total_seconds())
        assert delivery.status == "failed" and delivery.attempts == webhooks.MAX_ATTEMPTS
        assert waits == sorted(waits) and waits[1] == 2 * waits[0]


def test_webhooks_need_a_key_and_only_use_the_keys_own_watchlists(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/api/v1/webhooks").status_code == 401
    _, mine = make_key(["read"])
    _, theirs = make_key(["read"])
    watchlist = client.post(
        "/api/v1/watchlists",
        {"name": "x", "items": [{"name": "某公司"}]},
        content_type="application/json",
        **auth(mine),
    ).json()
    response = client.post(
        "/api/v1/webhooks",
        {"url": "http://127.0.0.1:9/x", "watchlist": watchlist["id"]},
        content_type="application/json",
        **auth(theirs),
    )
    assert response.status_code == 400
