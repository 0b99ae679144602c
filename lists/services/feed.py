"""Write the change feed. Every Change row is created here.

Sequence numbers come from a database sequence, which hands them out at insert time, not at
commit time: two concurrent publishes could commit 11 before 10 and a reader at 11 would skip
10 forever. Writers therefore take one transaction-scoped advisory lock before inserting, so
changes become visible strictly in sequence order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connection
from django.db.models import JSONField, QuerySet
from django.db.models.expressions import RawSQL

from ..models import Change, Listing

FEED_LOCK_KEY = 7_400_001
# A change's `identifier`, from a subject row aliased `s`: never the full personal ID number.
IDENTIFIER_SQL = "COALESCE(s.uscc, NULLIF(s.person_id_masked, ''), s.org_code)"
# A listing's values from the document of a batch row aliased `r`: publishing stages them so,
# and the change of a listing a batch added shows them so (feed_data_sql).
ROW_VALUES_SQL = {
    "reference": "COALESCE(r.data->>'reference', '')",
    "reason": "COALESCE(r.data->>'reason', '')",
    "severity": "CASE WHEN r.data->>'severity' IN ({}) THEN r.data->>'severity' ELSE '' END".format(
        ", ".join(f"'{value}'" for value in Listing.Severity.values if value)
    ),
    "decided_on": "(r.data->>'decided_on')::date",
    "published_on": "(r.data->>'published_on')::date",
    "expires_on": "(r.data->>'expires_on')::date",
}


def lock_feed() -> None:
    """Serialise change-feed writers until the current transaction ends."""
    if not connection.in_atomic_block:
        raise RuntimeError("lock_feed() must run inside transaction.atomic()")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [FEED_LOCK_KEY])


def data_version() -> int:
    """Return the latest change-feed sequence number: the data version answers reflect."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(seq), 0) FROM lists_change")
        return int(cursor.fetchone()[0])


def feed_data_sql(change: str) -> str:
    """Return SQL for the data a change (aliased `change`) shows: the listing as published.

    A change keeps its own document, except a listing added by a batch: its values are those of
    the batch row it was published from, with the row's name, and its status is what it was on
    the day of the change (Django's sessions, like the publication, count days in UTC).
    """
    values = ", ".join(f"'{name}', {sql}" for name, sql in ROW_VALUES_SQL.items())
    return f"""COALESCE({change}.data, (
        SELECT jsonb_build_object(
            'listing_id', {change}.listing_id, 'list', cl.code, 'subject_id', s.id,
            'subject_type', s.subject_type, 'name', r.data->>'name', 'identifier', {IDENTIFIER_SQL},
            {values}, 'content_hash', r.content_hash,
            'status', CASE WHEN (r.data->>'expires_on')::date < ({change}.created_at AT TIME ZONE 'UTC')::date
                           THEN 'expired' ELSE 'active' END)
        FROM lists_batchrow r
        JOIN lists_subject s ON s.id = {change}.subject_id
        JOIN lists_creditlist cl ON cl.id = {change}.credit_list_id
        WHERE r.id = {change}.row_id))"""  # noqa: S608 - composed from constants


def with_data(changes: QuerySet[Change]) -> QuerySet[Change]:
    """Annotate each change with `published`, the data it shows (see feed_data_sql)."""
    sql = feed_data_sql("lists_change")  # constants only, no value
    return changes.annotate(published=RawSQL(sql, (), output_field=JSONField()))  # noqa: S611


def listing_snapshot(listing: Listing) -> dict[str, Any]:
    """Return the listing as integrators see it (never a full personal ID number)."""
    subject = listing.subject
    return {
        "listing_id": listing.pk,
        "list": listing.credit_list.code,
        "subject_id": subject.pk,
        "subject_type": subject.subject_type,
        "name": subject.name,
        "identifier": subject.identifier_display,
        "reference": listing.reference,
        "reason": listing.reason,
        "severity": listing.severity,
        "decided_on": _iso(listing.decided_on),
        "published_on": _iso(listing.published_on),
        "expires_on": _iso(listing.expires_on),
        "status": listing.status,
        "content_hash": listing.content_hash,
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def record_changes(
    listings: Iterable[Listing], *, op: str, reason: str, batch_id: int | None = None
) -> tuple[int | None, int | None]:
    """Append one change per listing; return the first and last sequence numbers written."""
    lock_feed()
    rows = [
        Change(
            op=op,
            reason=reason,
            subject_id=listing.subject_id,
            listing_id=listing.pk,
            credit_list_id=listing.credit_list_id,
            batch_id=batch_id,
            data=listing_snapshot(listing),
        )
        for listing in listings
    ]
    created = Change.objects.bulk_create(rows, batch_size=5000)
    if not created:
        return None, None
    return created[0].seq, created[-1].seq


def record_changes_sql(
    listing_filter_sql: str, params: list[Any], *, op: str, reason: str, batch_id: int | None = None
) -> int:
    """Append one change per listing matched by a SQL condition on `l`; return how many.

    The set-based twin of record_changes() for jobs over millions of rows (expiry, demo data).
    """
    lock_feed()
    sql, sql_params = change_insert_sql(
        "lists_listing", listing_filter_sql, op=op, reason=reason, batch_id=batch_id
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*sql_params, *params])
        return cursor.rowcount


def change_insert_sql(
    source: str, listing_filter_sql: str, *, op: str, reason: str, batch_id: int | None = None
) -> tuple[str, list[Any]]:
    """Return the INSERT of one change per row `l` of `source` matching the condition, and its leading params.

    `source` is a table or a CTE with the listing's columns (an `UPDATE … RETURNING *` feeds the
    feed in the same statement). The caller holds the feed lock (lock_feed()).
    """
    sql = f"""
        INSERT INTO lists_change (op, reason, subject_id, listing_id, credit_list_id, batch_id, data, created_at)
        SELECT %s, %s, l.subject_id, l.id, l.credit_list_id, %s::bigint, to_jsonb(d), now()
        FROM {source} l
        JOIN lists_subject s ON s.id = l.subject_id
        JOIN lists_creditlist cl ON cl.id = l.credit_list_id
        -- One row to_jsonb() is a fifth cheaper than jsonb_build_object() of the same pairs,
        -- which looks up every argument's type again on each row (~1 s per million changes).
        CROSS JOIN LATERAL (
            SELECT l.id AS listing_id, cl.code AS list, s.id AS subject_id, s.subject_type, s.name,
                   {IDENTIFIER_SQL} AS identifier,
                   l.reference, l.reason, l.severity, l.decided_on, l.published_on, l.expires_on,
                   l.status, l.content_hash
        ) d
        WHERE {listing_filter_sql}
        ORDER BY l.id
    """  # noqa: S608 - source and condition are code, values are parameters
    return sql, [op, reason, batch_id]
