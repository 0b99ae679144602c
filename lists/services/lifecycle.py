"""Expire listings whose publication period has ended."""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction
from django.utils import timezone

from .feed import lock_feed, record_changes_sql
from .measures import apply_measures


def expire_listings(*, today: dt.date | None = None) -> int:
    """End every in-force listing past its expiry, lift its restrictions, write the feed."""
    today = today or timezone.localdate()
    with transaction.atomic():
        lock_feed()
        with connection.cursor() as cursor:
            cursor.execute(
                """
                UPDATE lists_listing SET status = 'expired', ended_at = now(), last_changed_at = now()
                WHERE status IN ('active', 'disputed') AND expires_on < %s
                RETURNING id
                """,
                [today],
            )
            expired_ids = [row[0] for row in cursor.fetchall()]
        if not expired_ids:
            return 0
        record_changes_sql("l.id = ANY(%s)", [expired_ids], op="remove", reason="expire")
        apply_measures(listing_ids=expired_ids, reason="expired")
    return len(expired_ids)
