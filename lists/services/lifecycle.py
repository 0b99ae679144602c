"""Expire listings whose publication period has ended."""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction
from django.utils import timezone

from .feed import change_insert_sql, lock_feed

# One statement: end the due listings, append one "remove" change per listing to the feed and
# lift their restrictions, all fed by the UPDATE's RETURNING rows (no ids round-trip through
# Python). An ended listing derives no restriction, so lifting its live ones is exactly what a
# scoped apply_measures() would do. Data-modifying CTEs always run to completion and share one
# snapshot: the feed sees the listings as expired, and a second run finds nothing due. An
# expired listing keeps the time of the last snapshot that confirmed it (Listing.seen_at).
_EXPIRE = """
    WITH expired AS (
        UPDATE lists_listing l SET status = 'expired', ended_at = now(), last_changed_at = now(),
            last_seen_at = GREATEST(l.last_seen_at, c.last_snapshot_at)
        FROM lists_creditlist c
        WHERE c.id = l.credit_list_id AND l.status IN ('active', 'disputed') AND l.expires_on < %s
        RETURNING l.id, l.subject_id, l.credit_list_id, l.reference, l.reason, l.severity, l.decided_on,
                  l.published_on, l.expires_on, l.status, l.content_hash
    ),
    feed AS ({feed}),
    lifted AS (
        UPDATE lists_restriction r SET lifted_at = now(), lifted_reason = %s
        FROM expired e WHERE r.listing_id = e.id AND r.lifted_at IS NULL
    )
    SELECT count(*) FROM expired
"""


def expire_listings(*, today: dt.date | None = None) -> int:
    """End every in-force listing past its expiry, lift its restrictions, write the feed."""
    today = today or timezone.localdate()
    feed_sql, feed_params = change_insert_sql("expired", "true", op="remove", reason="expire")
    with transaction.atomic():
        lock_feed()
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL work_mem = '64MB'")  # sort the feed rows in memory
            cursor.execute(_EXPIRE.format(feed=feed_sql), [today, *feed_params, "expired"])
            return int(cursor.fetchone()[0])
