"""Roll a published batch back: every listing it touched returns to its state before it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from ...models import Batch, CreditList
from ..feed import record_changes_sql
from .processing import BatchError, _audit
from .publishing import derive_restrictions, touched_filter, touched_listings

_END_ADDED = """
    UPDATE lists_listing l SET status = 'revoked', ended_at = now(), last_changed_at = now()
    WHERE {added} AND l.status IN ('active', 'disputed')
"""
_RESTORE = """
    UPDATE lists_listing l SET
        reference = b->>'reference', reason = b->>'reason', severity = b->>'severity',
        decided_on = (b->>'decided_on')::date, published_on = (b->>'published_on')::date,
        expires_on = (b->>'expires_on')::date, extra = b->'extra', content_hash = b->>'content_hash',
        status = b->>'status', ended_at = (b->>'ended_at')::timestamptz,
        last_batch_id = (b->>'last_batch_id')::bigint, last_changed_at = now()
    FROM (SELECT listing_id, diff->'before' AS b FROM lists_batchrow
          WHERE batch_id = %(batch)s AND action IN ('change', 'remove') AND diff ? 'before') r
    WHERE l.id = r.listing_id
"""
# Someone else changed a listing since this batch: restoring would overwrite their change.
_CONFLICTS = """
    SELECT count(*) FROM lists_listing l
    WHERE (l.id IN (SELECT listing_id FROM lists_batchrow WHERE batch_id = %s
                    AND action IN ('change', 'remove')) OR {added})
      AND l.last_batch_id IS DISTINCT FROM %s
"""
FEED_OPS = (("add", "remove"), ("change", "modify"), ("remove", "add"))


def rollback_batch(
    *, batch_id: int, actor: Any, ip_address: str | None = None, queued: bool = False
) -> Batch:
    """Restore the previous state of every listing a published batch touched, in one transaction.

    `queued`: the batch was marked rolling back by request_rollback.
    """
    with transaction.atomic():
        batch = Batch.objects.select_for_update().select_related("credit_list__agency").get(pk=batch_id)
        credit_list = CreditList.objects.select_for_update().get(pk=batch.credit_list_id)
        check_rollback(batch, expected=Batch.Status.ROLLING_BACK if queued else Batch.Status.PUBLISHED)
        added, added_params = touched_filter(batch, "add")
        with connection.cursor() as cursor:
            cursor.execute(_END_ADDED.format(added=added), added_params)
            cursor.execute(_RESTORE, {"batch": batch.pk})
        for action, op in FEED_OPS:
            record_changes_sql(*touched_filter(batch, action), op=op, reason="rollback", batch_id=batch.pk)
        touched = touched_listings(batch)
        derive_restrictions(batch, touched, reason="rollback", cause="rollback")
        if batch.mode == Batch.Mode.SNAPSHOT:
            credit_list.last_snapshot_at = _snapshot_before(batch)
            credit_list.save(update_fields=["last_snapshot_at"])
        batch.status, batch.rolled_back_at, batch.error = Batch.Status.ROLLED_BACK, timezone.now(), ""
        batch.rolled_back_by = actor if getattr(actor, "is_authenticated", False) else None
        batch.save(update_fields=["status", "rolled_back_at", "rolled_back_by", "error"])
        _audit("batch.rollback", batch, actor, ip_address, {"listings": len(touched)})
    return batch


def _snapshot_before(batch: Batch) -> dt.datetime | None:
    """Return when the list's published snapshot before this one was published, if any."""
    return (
        Batch.objects.filter(
            credit_list_id=batch.credit_list_id,
            mode=Batch.Mode.SNAPSHOT,
            status=Batch.Status.PUBLISHED,
            published_at__lt=batch.published_at,
        )
        .order_by("-published_at")
        .values_list("published_at", flat=True)
        .first()
    )


def check_rollback(batch: Batch, *, expected: str = Batch.Status.PUBLISHED) -> None:
    """Raise BatchError, saying why, unless the batch can be rolled back now."""
    if batch.status in (Batch.Status.ROLLED_BACK, Batch.Status.ROLLING_BACK) and batch.status != expected:
        raise BatchError(f"this batch is already {batch.get_status_display().lower()}")
    if batch.status != expected:
        raise BatchError("only a published batch can be rolled back")
    later = Batch.objects.filter(
        credit_list_id=batch.credit_list_id,
        status__in=(Batch.Status.PUBLISHED, Batch.Status.ROLLING_BACK),
        published_at__gt=batch.published_at,
    )
    if later.exists():
        raise BatchError("a later batch of this list has been published: roll that one back first")
    added, added_params = touched_filter(batch, "add")
    with connection.cursor() as cursor:
        cursor.execute(_CONFLICTS.format(added=added), [batch.pk, *added_params, batch.pk])
        conflicts = cursor.fetchone()[0]
    if conflicts:
        raise BatchError(
            f"{conflicts} listings changed after this batch was published; it cannot be rolled back"
        )
