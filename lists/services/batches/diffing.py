"""Compare a staged batch with what is published for its list, in set-based SQL."""

from __future__ import annotations

from typing import Any

from django.db import connection

from ...models import Batch
from .staging import INTERNAL_KEYS

# The published listing in the same shape as BatchRow.data, so the two compare key by key.
CURRENT_SQL = """
    jsonb_strip_nulls(jsonb_build_object(
        'name', s.name, 'name_en', NULLIF(s.name_en, ''),
        'aliases', CASE WHEN cardinality(s.aliases) > 0 THEN to_jsonb(s.aliases) END,
        'region', NULLIF(s.region_code, ''), 'subject_type', s.subject_type,
        'reference', NULLIF(l.reference, ''), 'reason', NULLIF(l.reason, ''),
        'severity', NULLIF(l.severity, ''), 'decided_on', l.decided_on,
        'published_on', l.published_on, 'expires_on', l.expires_on)) || l.extra
"""

_RESET = """
    UPDATE lists_batchrow r SET listing_id = NULL, diff = '{}',
        action = CASE WHEN r.outcome = 'invalid' THEN ''
                      WHEN r.data->>'action' = 'remove' THEN 'remove' ELSE 'add' END
    WHERE r.batch_id = %(batch)s AND r.line_no <= %(last_line)s
"""
_DROP_MISSING = "DELETE FROM lists_batchrow WHERE batch_id = %(batch)s AND line_no > %(last_line)s"
_MATCH = """
    UPDATE lists_batchrow r SET listing_id = l.id,
        action = CASE WHEN r.action = 'remove' THEN 'remove'
                      WHEN l.content_hash = r.content_hash THEN 'unchanged' ELSE 'change' END
    FROM lists_listing l
    WHERE r.batch_id = %(batch)s AND r.line_no <= %(last_line)s AND r.outcome <> 'invalid'
      AND l.credit_list_id = %(list)s AND l.source_key = r.source_key AND l.status IN ('active', 'disputed')
"""
_NOTHING_TO_REMOVE = """
    UPDATE lists_batchrow r SET action = '',
        warnings = CASE WHEN r.warnings @> '["action: no published record to remove"]'::jsonb THEN r.warnings
                        ELSE r.warnings || '["action: no published record to remove"]'::jsonb END,
        outcome = 'warning'
    WHERE r.batch_id = %(batch)s AND r.action = 'remove' AND r.listing_id IS NULL
"""
_FIELD_DIFF = f"""
    UPDATE lists_batchrow r SET diff = d.diff,
        action = CASE WHEN d.diff = '{{}}'::jsonb THEN 'unchanged' ELSE 'change' END
    FROM (
        SELECT r2.id, (
            SELECT COALESCE(jsonb_object_agg(k, jsonb_build_array(cur->k, new->k)), '{{}}'::jsonb)
            FROM jsonb_object_keys(cur || new) AS k
            WHERE (cur->k) IS DISTINCT FROM (new->k) AND NOT k = ANY(%(internal)s)
        ) AS diff
        FROM lists_batchrow r2
        JOIN lists_listing l ON l.id = r2.listing_id
        JOIN lists_subject s ON s.id = l.subject_id
        CROSS JOIN LATERAL (SELECT {CURRENT_SQL} AS cur,
                                   (SELECT COALESCE(jsonb_object_agg(key, value), '{{}}'::jsonb)
                                    FROM jsonb_each(r2.data)
                                    WHERE value NOT IN ('null'::jsonb, '""'::jsonb, '[]'::jsonb)) AS new) AS x
        WHERE r2.batch_id = %(batch)s AND r2.action = 'change'
    ) d
    WHERE r.id = d.id
"""  # noqa: S608 - composed from constants; values are parameters
# In a snapshot, every in-force listing the file does not mention is a removal. It is staged
# as a row after the file's last line, flagged `missing`, keeping what is published.
_MISSING = f"""
    INSERT INTO lists_batchrow (batch_id, line_no, raw, data, errors, warnings, outcome, action,
                                source_key, content_hash, diff, listing_id)
    SELECT %(batch)s, %(last_line)s + row_number() OVER (ORDER BY l.id), '{{}}',
           {CURRENT_SQL} || jsonb_build_object('missing', true,
               'identifier', COALESCE(s.uscc, NULLIF(s.person_id_masked, ''), NULLIF(s.org_code, ''),
                                      s.legacy_ids[1])),
           '[]', '[]', 'valid', 'remove', l.source_key, l.content_hash, '{{}}', l.id
    FROM lists_listing l JOIN lists_subject s ON s.id = l.subject_id
    WHERE l.credit_list_id = %(list)s AND l.status IN ('active', 'disputed')
      AND NOT EXISTS (SELECT 1 FROM lists_batchrow r WHERE r.batch_id = %(batch)s
                      AND r.line_no <= %(last_line)s AND r.source_key = l.source_key)
"""  # noqa: S608 - composed from constants; values are parameters
# Rows enter lists_batchrow already matched with the published listing, so each row is
# written once: updating a million wide rows afterwards costs more than parsing them. A record
# that an earlier line of the file already gave (same source key) is invalid: found here, in one
# pass, because the rows were staged in parallel by processes that each saw only part of the file.
_INSERT_MATCHED = """
    INSERT INTO lists_batchrow (batch_id, line_no, raw, data, errors, warnings, outcome, action,
                                source_key, content_hash, diff, listing_id)
    SELECT %(batch)s, r.line_no, r.raw, r.data,
           CASE WHEN d.first_line IS NULL THEN r.errors ELSE r.errors || jsonb_build_array(
               'same record as line ' || d.first_line || ' (duplicate in this file)') END,
           r.warnings, CASE WHEN d.first_line IS NULL THEN r.outcome ELSE 'invalid' END,
           CASE WHEN r.outcome = 'invalid' OR d.first_line IS NOT NULL THEN ''
                WHEN r.data->>'action' = 'remove' THEN 'remove'
                WHEN l.id IS NULL THEN 'add' WHEN l.content_hash = r.content_hash THEN 'unchanged'
                ELSE 'change' END,
           r.source_key, r.content_hash, '{{}}', l.id
    FROM {source} r
    LEFT JOIN ({duplicates}) d ON d.source_key = r.source_key AND r.line_no > d.first_line
    LEFT JOIN lists_listing l ON r.outcome <> 'invalid' AND d.first_line IS NULL
         AND l.credit_list_id = %(list)s AND l.source_key = r.source_key AND l.status IN ('active', 'disputed')
    WHERE {where}
"""
_DUPLICATES = """
    SELECT source_key, min(line_no) AS first_line FROM {source}
    WHERE source_key <> '' GROUP BY source_key HAVING count(*) > 1
"""
_NO_DUPLICATES = "SELECT NULL::varchar AS source_key, NULL::integer AS first_line WHERE false"
_COUNTS = """
    SELECT outcome, action, count(*) FROM lists_batchrow WHERE batch_id = %s GROUP BY outcome, action
"""


def insert_matched(
    batch: Batch, *, source: str, where: str, params: dict[str, Any], find_duplicates: bool
) -> None:
    """Insert rows from `source` (a staging table or an earlier batch) matched with the list."""
    duplicates = _DUPLICATES.format(source=source) if find_duplicates else _NO_DUPLICATES
    sql = _INSERT_MATCHED.format(source=source, where=where, duplicates=duplicates)
    with connection.cursor() as cursor:
        # The duplicate search and the join with a big list hash a million keys: in memory,
        # not in temp-file batches. Set for this statement only (it may run outside a transaction).
        cursor.execute("SET work_mem = '64MB'")
        try:
            cursor.execute(sql, {"batch": batch.pk, "list": batch.credit_list_id, **params})
        finally:
            cursor.execute("RESET work_mem")


def compute_diff(batch: Batch, *, last_line: int, matched_at: int | None = None) -> dict[str, int]:
    """Set every staged row's action against the published list; return the counts.

    `matched_at` is the list's feed position read before its rows went in through
    insert_matched(). While the list has not changed since, the reset and the match (each a
    rewrite of every row, the slowest statements here) are skipped. Once another batch or an
    expiry has changed it, the rows are matched again: the preview must show what publishing
    would change.
    """
    params: dict[str, Any] = {
        "batch": batch.pk,
        "last_line": last_line,
        "list": batch.credit_list_id,
        "internal": list(INTERNAL_KEYS),
    }
    with connection.cursor() as cursor:
        base_seq = feed_position(batch.credit_list_id)
        if base_seq != matched_at:
            cursor.execute(_DROP_MISSING, params)
            cursor.execute(_RESET, params)
            cursor.execute(_MATCH, params)
        cursor.execute(_NOTHING_TO_REMOVE, params)
        cursor.execute(_FIELD_DIFF, params)
        if batch.mode == Batch.Mode.SNAPSHOT:
            cursor.execute(_MISSING, params)
    return {**count_rows(batch, last_line=last_line), "base_seq": base_seq}


def feed_position(credit_list_id: int) -> int:
    """Return the list's latest change-feed number: every write to its listings moves it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(max(seq), 0) FROM lists_change WHERE credit_list_id = %s", [credit_list_id]
        )
        return int(cursor.fetchone()[0])


def count_rows(batch: Batch, *, last_line: int | None = None) -> dict[str, int]:
    """Return the batch's rows counted by outcome and by action."""
    counts = dict.fromkeys(("rows", "valid", "warning", "invalid", "add", "change", "remove", "unchanged"), 0)
    with connection.cursor() as cursor:
        cursor.execute(_COUNTS, [batch.pk])
        for outcome, action, n in cursor.fetchall():
            counts[outcome] += n
            if action:
                counts[action] += n
    if last_line is None:
        last_line = int((batch.counts or {}).get("last_line", 0))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM lists_batchrow WHERE batch_id = %s AND line_no <= %s", [batch.pk, last_line]
        )
        counts["rows"] = cursor.fetchone()[0]
    counts["last_line"] = last_line
    return counts
