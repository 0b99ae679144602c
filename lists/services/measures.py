"""Derive restrictions from the measure catalogue: which measures are in force for whom.

Automation only derives: a restriction exists because a person published a listing and the
catalogue's current edition says the listing's list triggers the measure.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection, transaction

_LIFT = """
    UPDATE lists_restriction r SET lifted_at = now(), lifted_reason = %s
    FROM lists_listing l, lists_measure m, lists_catalogueedition e
    WHERE r.listing_id = l.id AND r.measure_id = m.id AND m.edition_id = e.id
      AND r.lifted_at IS NULL
      AND (l.status NOT IN ('active', 'disputed') OR NOT e.is_current) {scope}
"""

_DERIVE = """
    INSERT INTO lists_restriction (subject_id, listing_id, measure_id, starts_on, ends_on, lifted_reason)
    SELECT l.subject_id, l.id, m.id,
           COALESCE(l.published_on, l.decided_on, CURRENT_DATE),
           CASE WHEN m.duration_months IS NULL THEN l.expires_on
                ELSE LEAST(l.expires_on, (COALESCE(l.published_on, l.decided_on, CURRENT_DATE)
                          + make_interval(months => m.duration_months))::date) END,
           ''
    FROM lists_listing l
    JOIN lists_subject s ON s.id = l.subject_id
    JOIN lists_measure_triggered_by t ON t.creditlist_id = l.credit_list_id
    JOIN lists_measure m ON m.id = t.measure_id
    JOIN lists_catalogueedition e ON e.id = m.edition_id AND e.is_current
    WHERE l.status IN ('active', 'disputed')
      AND (cardinality(m.subject_types) = 0 OR s.subject_type = ANY (m.subject_types)) {scope}
    ON CONFLICT (listing_id, measure_id) DO UPDATE
       SET ends_on = EXCLUDED.ends_on, starts_on = EXCLUDED.starts_on, lifted_at = NULL, lifted_reason = ''
       WHERE lists_restriction.lifted_at IS NOT NULL OR lists_restriction.ends_on IS DISTINCT FROM EXCLUDED.ends_on
"""


@dataclass
class MeasuresResult:
    lifted: int
    derived: int


def apply_measures(*, listing_ids: list[int] | None = None, reason: str = "listing_ended") -> MeasuresResult:
    """Recompute restrictions for the given listings (all listings when None); idempotent."""
    scope, params = ("", []) if listing_ids is None else ("AND l.id = ANY(%s)", [listing_ids])
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_LIFT.format(scope=scope), [reason, *params])
        lifted = cursor.rowcount
        cursor.execute(_DERIVE.format(scope=scope), params)
        derived = cursor.rowcount
    return MeasuresResult(lifted=lifted, derived=derived)
