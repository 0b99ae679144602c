"""Watchlists and signed webhooks that follow the change feed.

Each webhook keeps its own cursor in the feed. Dispatch reads the changes after the cursor that
touch a watched subject (a join on the watch items' indexes: only what changed is looked at,
watches are never re-screened), stores them as one delivery, and moves the cursor. Delivery
POSTs the stored body signed with HMAC-SHA256 over "<timestamp>.<body>", retrying with
exponential backoff; every attempt is logged and any delivery can be replayed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.request
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from agencies.models import ApiKey

from .. import identifiers as ids
from ..models import WatchItem, Watchlist, Webhook, WebhookDelivery
from ..search.text import normalize_name
from .feed import data_version, feed_data_sql
from .screening import lookup_identifier

SIGNATURE_HEADER = "X-Xinyong-Signature"
TIMESTAMP_HEADER = "X-Xinyong-Timestamp"
MAX_ATTEMPTS = 8
BACKOFF_BASE_SECONDS = 30
TIMEOUT_SECONDS = 10
MAX_CHANGES_PER_DELIVERY = 1000
SIGNATURE_TOLERANCE_SECONDS = 300


def create_watchlist(*, api_key: ApiKey, name: str, items: list[dict[str, str]]) -> Watchlist:
    """Create a watchlist; identifiers are kept as lookup keys (a person's only as its keyed hash)."""
    with transaction.atomic():
        watchlist = Watchlist.objects.create(api_key=api_key, name=name)
        WatchItem.objects.bulk_create([_item(watchlist, item) for item in items])
    return watchlist


def _item(watchlist: Watchlist, item: dict[str, str]) -> WatchItem:
    key, display = "", ""
    if item.get("identifier", "").strip():
        found = lookup_identifier(item["identifier"])
        value = ids.compact_identifier(item["identifier"])
        key = found[1] if found else value
        is_person = found is not None and found[0] == "person_id_hash"
        display = ids.mask_person_id(value) if is_person else value[:32]
    name = normalize_name(item.get("name", "")) if item.get("name") else ""
    return WatchItem(
        watchlist=watchlist,
        identifier_key=key,
        identifier_display=display,
        normalized_name=name,
        label=item.get("label", "")[:200],
    )


def create_webhook(*, api_key: ApiKey, watchlist: Watchlist, url: str) -> Webhook:
    """Register a URL for a watchlist, starting from the current data version."""
    return Webhook.objects.create(
        api_key=api_key,
        watchlist=watchlist,
        url=url,
        secret=secrets.token_urlsafe(32),
        cursor_seq=data_version(),
    )


_WATCHED_CHANGES = """
    SELECT c.seq, c.op, c.reason, c.subject_id, c.listing_id, cl.code, c.created_at, {data}
    FROM lists_change c
    JOIN lists_creditlist cl ON cl.id = c.credit_list_id AND cl.is_public
    JOIN lists_subject s ON s.id = c.subject_id
    WHERE c.seq > %(after)s AND c.seq <= %(upto)s
      AND EXISTS (
        SELECT 1 FROM lists_watchitem w
        WHERE w.watchlist_id = %(watchlist)s
          AND ((w.identifier_key <> '' AND w.identifier_key IN (s.uscc, s.person_id_hash, s.org_code))
               OR (w.normalized_name <> '' AND EXISTS (
                   SELECT 1 FROM lists_subjectname n
                   WHERE n.subject_id = s.id AND n.normalized = w.normalized_name))))
    ORDER BY c.seq
    LIMIT %(limit)s
""".replace("{data}", feed_data_sql("c"))


def dispatch_webhooks() -> int:
    """Turn the feed's new changes into deliveries for every active webhook; return how many made."""
    made = 0
    for webhook_id in Webhook.objects.filter(is_active=True).order_by("pk").values_list("pk", flat=True):
        made += dispatch_webhook(webhook_id=webhook_id)
    return made


def dispatch_webhook(*, webhook_id: int) -> int:
    """Create deliveries for one webhook from the changes after its cursor; return how many."""
    made = 0
    while True:
        with transaction.atomic():
            webhook = Webhook.objects.select_for_update().get(pk=webhook_id)
            upto = data_version()
            if upto <= webhook.cursor_seq:
                return made
            params = {"after": webhook.cursor_seq, "upto": upto, "watchlist": webhook.watchlist_id}
            with connection.cursor() as cursor:
                cursor.execute(_WATCHED_CHANGES, {**params, "limit": MAX_CHANGES_PER_DELIVERY})
                rows = cursor.fetchall()
            full = len(rows) == MAX_CHANGES_PER_DELIVERY
            new_cursor = rows[-1][0] if full else upto
            if rows:
                _new_delivery(webhook, rows)
                made += 1
            webhook.cursor_seq = new_cursor
            webhook.save(update_fields=["cursor_seq"])
        if not full:
            return made


def _new_delivery(webhook: Webhook, rows: list[tuple[Any, ...]]) -> WebhookDelivery:
    changes = [
        {
            "seq": seq,
            "op": op,
            "reason": reason,
            "subject_id": subject_id,
            "listing_id": listing_id,
            "list": code,
            "created_at": created.isoformat(),
            "data": data if isinstance(data, dict) else json.loads(data),
        }
        for seq, op, reason, subject_id, listing_id, code, created, data in rows
    ]
    body = {"webhook": webhook.pk, "watchlist": webhook.watchlist_id, "changes": changes}
    return WebhookDelivery.objects.create(
        webhook=webhook,
        first_seq=rows[0][0],
        last_seq=rows[-1][0],
        body=json.dumps(body, ensure_ascii=False, sort_keys=True),
        next_attempt_at=timezone.now(),
    )


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return the signature header value for a body sent at a timestamp."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: str, body: bytes, header: str, *, now: float | None = None) -> bool:
    """Return whether a received signature header is valid and recent (what a receiver does)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now or time.time()) - timestamp) > SIGNATURE_TOLERANCE_SECONDS:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


def deliver_due_webhooks(*, now: dt.datetime | None = None) -> int:
    """Attempt every pending delivery that is due; return how many were delivered."""
    now = now or timezone.now()
    due = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
    return sum(deliver(delivery_id=pk) for pk in due.order_by("pk").values_list("pk", flat=True))


def deliver(*, delivery_id: int) -> bool:
    """POST one delivery; on failure schedule the next attempt with backoff or give up."""
    lease = timezone.now() + dt.timedelta(seconds=TIMEOUT_SECONDS * 3)
    # Claim it first so two workers never send the same attempt; the network call is outside.
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=timezone.now()
    ).update(next_attempt_at=lease)
    if not claimed:
        return False
    delivery = WebhookDelivery.objects.select_related("webhook").get(pk=delivery_id)
    code, error = _post(delivery)
    _record_attempt(delivery, code, error)
    return delivery.status == WebhookDelivery.Status.DELIVERED


def _post(delivery: WebhookDelivery) -> tuple[int | None, str]:
    body = delivery.body.encode()
    timestamp = int(time.time())
    request = urllib.request.Request(  # noqa: S310 - integrators' URLs are http(s) by URLField validation
        delivery.webhook.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "Xinyong-Webhooks/1",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(delivery.webhook.secret, timestamp, body),
            "X-Xinyong-Delivery": str(delivery.pk),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return None, str(exc)[:500]


def _record_attempt(delivery: WebhookDelivery, code: int | None, error: str) -> None:
    now = timezone.now()
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.response_code = code
    delivery.last_error = error
    delivery.log = [*delivery.log, {"at": now.isoformat(), "code": code, "error": error}]
    if code is not None and 200 <= code < 300:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = (
            WebhookDelivery.Status.DELIVERED,
            now,
            None,
        )
    elif delivery.attempts >= MAX_ATTEMPTS:
        delivery.status, delivery.next_attempt_at = WebhookDelivery.Status.FAILED, None
    else:
        delivery.next_attempt_at = now + dt.timedelta(seconds=backoff_seconds(delivery.attempts))
    delivery.save()


def backoff_seconds(attempts: int) -> int:
    """Return the wait before the next attempt: 30 s, 1 min, 2 min, … capped at 6 h."""
    return min(BACKOFF_BASE_SECONDS * 2 ** (attempts - 1), 6 * 3600)


def replay_delivery(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Queue a delivery to be sent again now, whatever its status; its log is kept."""
    delivery.status = WebhookDelivery.Status.PENDING
    delivery.next_attempt_at = timezone.now()
    delivery.save(update_fields=["status", "next_attempt_at"])
    return delivery
