"""Derive restrictions from the measure catalogue: which measures are in force for whom.

Automation only derives: a restriction exists because a person published a listing and the
catalogue's current edition says the listing's list triggers the measure.

A recompute compares the restrictions that should be live with the existing ones in one pass and
keeps only the differences in a temporary table, then applies them: lift what is live but not
wanted, revive or correct what is wanted but lifted or different, add what is missing. In the
steady state the table stays empty and nothing is written, so recomputing a million listings
writes nothing (an `INSERT … ON CONFLICT DO UPDATE` would lock, and so write,
every existing row even when its WHERE leaves it unchanged).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from ..models import Measure, PendingRecompute, Restriction
from .feed import lock_feed, record_changes_sql

# A new catalogue edition mostly repeats the old one: a live restriction whose measure code is in
# the new edition moves to it as it is (one row write, no lift-and-re-add, no feed entry). What
# really changed is then lifted, corrected or added below, and only that reaches the feed.
_CARRY = """
    UPDATE lists_restriction r SET measure_id = n.id
    FROM lists_measure o, lists_catalogueedition oe, lists_measure n, lists_catalogueedition ne
    WHERE r.measure_id = o.id AND o.edition_id = oe.id AND NOT oe.is_current
      AND n.code = o.code AND n.edition_id = ne.id AND ne.is_current AND r.lifted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM lists_restriction x WHERE x.listing_id = r.listing_id AND x.measure_id = n.id)
"""

# IF NOT EXISTS + TRUNCATE: a caller's outer transaction may run two recomputes before it commits.
_TEMP_TABLES = """
    CREATE TEMP TABLE IF NOT EXISTS _measures_diff (
        kind char(1), restriction_id bigint, subject_id bigint, listing_id bigint, measure_id bigint,
        starts_on date, ends_on date
    ) ON COMMIT DROP;
    CREATE TEMP TABLE IF NOT EXISTS _measures_changed (listing_id bigint) ON COMMIT DROP;
    TRUNCATE _measures_diff, _measures_changed;
"""

# The restrictions that should be live, as a query (never materialised: over a million listings
# that temp table was most of a steady-state recompute, which then changed nothing).
_DESIRED = """
    SELECT l.subject_id, l.id AS listing_id, m.id AS measure_id,
           COALESCE(l.published_on, l.decided_on, CURRENT_DATE) AS starts_on,
           CASE WHEN m.duration_months IS NULL THEN l.expires_on
                ELSE LEAST(l.expires_on, (COALESCE(l.published_on, l.decided_on, CURRENT_DATE)
                          + make_interval(months => m.duration_months))::date) END AS ends_on
    FROM {listings} l
    JOIN lists_subject s ON s.id = l.subject_id
    JOIN lists_measure_triggered_by t ON t.creditlist_id = l.credit_list_id
    JOIN lists_measure m ON m.id = t.measure_id
    JOIN lists_catalogueedition e ON e.id = m.edition_id AND e.is_current
    WHERE l.status IN ('active', 'disputed')
      AND (cardinality(m.subject_types) = 0 OR s.subject_type = ANY (m.subject_types)) {scope_l}
"""

# One pass compares wanted with existing and keeps only the differences: L(ift) what is live but
# not wanted, R(evive) what is wanted but lifted or ending on another day, A(dd) what is missing.
# In the steady state it keeps nothing, and the steps below only touch the differences.
_DIFF = """
    INSERT INTO _measures_diff (kind, restriction_id, subject_id, listing_id, measure_id, starts_on, ends_on)
    SELECT CASE WHEN d.listing_id IS NULL THEN 'L' WHEN r.id IS NULL THEN 'A' ELSE 'R' END,
           r.id, d.subject_id, d.listing_id, d.measure_id, d.starts_on, d.ends_on
    FROM ({desired}) d
    FULL JOIN (SELECT id, listing_id, measure_id, ends_on, lifted_at
               FROM lists_restriction r WHERE true {scope_r}) r
      ON r.listing_id = d.listing_id AND r.measure_id = d.measure_id
    WHERE (d.listing_id IS NULL AND r.lifted_at IS NULL)
       OR r.id IS NULL
       OR (d.listing_id IS NOT NULL AND (r.lifted_at IS NOT NULL OR r.ends_on IS DISTINCT FROM d.ends_on))
"""

# Each step re-checks its condition on the row: a concurrent writer may have got there first.
_LIFT = """
    UPDATE lists_restriction r SET lifted_at = now(), lifted_reason = %s
    FROM _measures_diff x
    WHERE x.kind = 'L' AND r.id = x.restriction_id AND r.lifted_at IS NULL
"""

_REVIVE = """
    UPDATE lists_restriction r
    SET starts_on = x.starts_on, ends_on = x.ends_on, lifted_at = NULL, lifted_reason = ''
    FROM _measures_diff x
    WHERE x.kind = 'R' AND r.id = x.restriction_id
      AND (r.lifted_at IS NOT NULL OR r.ends_on IS DISTINCT FROM x.ends_on)
"""

_ADD = """
    INSERT INTO lists_restriction (subject_id, listing_id, measure_id, starts_on, ends_on, lifted_reason)
    SELECT x.subject_id, x.listing_id, x.measure_id, x.starts_on, x.ends_on, ''
    FROM _measures_diff x
    WHERE x.kind = 'A'
    ON CONFLICT (listing_id, measure_id) DO NOTHING
"""

_COLLECT = (
    "WITH touched AS ({statement} RETURNING {column}) INSERT INTO _measures_changed SELECT * FROM touched"
)


@dataclass
class MeasuresResult:
    lifted: int
    derived: int
    changes: int = 0


def apply_measures(
    *, listing_ids: list[int] | None = None, reason: str = "listing_ended", feed_reason: str | None = None
) -> MeasuresResult:
    """Recompute restrictions for the given listings (all listings when None); idempotent.

    With `feed_reason` (a new catalogue edition, an operator's recompute), also append one
    "modify" change per in-force listing whose restrictions changed, so integrators following
    the feed learn that the measures in force for that subject changed. Without it, the caller
    writes the feed itself (publish, expiry and repair already record the listing's change).
    A new edition that keeps a measure carries its restrictions over unchanged and silently.
    A full recompute also settles every recompute pending when it starts (PendingRecompute).
    """
    scoped = listing_ids is not None
    scope_l, scope_r = ("AND l.id = ANY(%s)", "AND r.listing_id = ANY(%s)") if scoped else ("", "")
    params = [listing_ids] if scoped else []
    with transaction.atomic():
        if feed_reason is not None:
            # Feed lock first, as publishing does, so a recompute and a publish never deadlock.
            lock_feed()
        with connection.cursor() as cursor:
            if not scoped:
                cursor.execute("SET LOCAL work_mem = '256MB'")  # hash joins over millions of rows
                # Read before the listings: each pending row's publication has committed by then.
                cursor.execute("SELECT coalesce(array_agg(id), '{}') FROM lists_pendingrecompute")
                settled = cursor.fetchone()[0]
            cursor.execute(_TEMP_TABLES)
            if not scoped:
                # A scoped run (publish, expiry) may lift-and-re-add instead: same end state, and
                # it skips a scan that only matters once, right after a new edition is loaded.
                cursor.execute(_CARRY)
            desired = _DESIRED.format(listings="lists_listing", scope_l=scope_l)
            if scoped:
                cursor.execute(_DIFF.format(desired=desired, scope_r=scope_r), params + params)
            else:
                # Read each listing once: with a nested loop the planner re-reads the listing
                # heap once per credit list (bitmap scans it thinks cheap), 3 s instead of 1 s.
                cursor.execute("SELECT current_setting('enable_nestloop')")
                nestloop = cursor.fetchone()[0]
                cursor.execute("SET LOCAL enable_nestloop = off")
                cursor.execute(_DIFF.format(desired=desired, scope_r=scope_r))
                cursor.execute("SELECT set_config('enable_nestloop', %s, true)", [nestloop])
            cursor.execute("ANALYZE _measures_diff")
            counts = [
                _run(cursor, _LIFT, [reason], "r.listing_id", feed_reason),
                _run(cursor, _REVIVE, [], "r.listing_id", feed_reason),
                _run(cursor, _ADD, [], "listing_id", feed_reason),
            ]
            if not scoped:
                cursor.execute("DELETE FROM lists_pendingrecompute WHERE id = ANY(%s)", [settled])
        result = MeasuresResult(lifted=counts[0], derived=counts[1] + counts[2])
        if feed_reason is not None:
            result.changes = record_changes_sql(
                "l.id IN (SELECT listing_id FROM _measures_changed) AND l.status IN ('active', 'disputed')",
                [],
                op="modify",
                reason=feed_reason,
            )
    return result


def _run(
    cursor: CursorWrapper, statement: str, params: list[Any], column: str, feed_reason: str | None
) -> int:
    """Execute one step; with a feed reason, keep the ids of the listings it touched."""
    sql = statement if feed_reason is None else _COLLECT.format(statement=statement, column=column)
    cursor.execute(sql, params)
    return int(cursor.rowcount)


# The subjects' restrictions as rows (subject_id, listing_id, measure_id, starts_on, ends_on):
# the recorded ones or, while a recompute is pending (PendingRecompute), what it will record,
# derived from the listings and the catalogue. Deriving starts from the subjects' own listings
# (OFFSET 0 keeps the planner from starting at the lists and reading all their listings), so
# for a subject it costs about what reading does. Its planning costs ~0.5 ms more, so readers
# ask whether a recompute is pending first (a cheap round trip) rather than plan both; the
# outer OFFSET 0 has it planned apart from the reader's own joins (2.4 ms in a check, else).
PENDING = "(SELECT EXISTS (SELECT 1 FROM lists_pendingrecompute))"
RECORDED = """
    SELECT subject_id, listing_id, measure_id, starts_on, ends_on FROM lists_restriction
    WHERE lifted_at IS NULL AND subject_id = ANY(%(subjects)s)
"""
_SUBJECTS_LISTINGS = "(SELECT * FROM lists_listing WHERE subject_id = ANY(%(subjects)s) OFFSET 0)"
DERIVED = f"""
    SELECT subject_id, listing_id, measure_id, starts_on, ends_on
    FROM ({_DESIRED.format(listings=_SUBJECTS_LISTINGS, scope_l="")}) d OFFSET 0
"""  # noqa: S608 - composed of constants
_IN_FORCE = (
    "SELECT * FROM ({live}) r WHERE r.starts_on <= %(on)s AND (r.ends_on IS NULL OR r.ends_on >= %(on)s)"
)


def in_force_sql(cursor: CursorWrapper) -> str:
    """Return the SQL of the restrictions of %(subjects)s in force on %(on)s, as things stand now."""
    cursor.execute(f"SELECT {PENDING}")  # noqa: S608 - a constant
    return _IN_FORCE.format(live=DERIVED if cursor.fetchone()[0] else RECORDED)


def in_force(subject_ids: list[int], on: dt.date) -> list[Restriction]:
    """Return the subjects' restrictions in force on the day, with their measures, by measure code.

    They are not model rows (no id): while a recompute is pending, they are derived. Callers
    keep those of the listings they show (a list may be off the public site).
    """
    with connection.cursor() as cursor:
        cursor.execute(in_force_sql(cursor), {"subjects": subject_ids, "on": on})
        rows = cursor.fetchall()
    found = [
        Restriction(subject_id=s, listing_id=li, measure_id=m, starts_on=start, ends_on=end)
        for s, li, m, start, end in rows
    ]
    measures = Measure.objects.select_related("edition").in_bulk({r.measure_id for r in found})
    for restriction in found:
        restriction.measure = measures[restriction.measure_id]
    return sorted(found, key=lambda r: (r.measure.code, r.listing_id))


# A million listings' restrictions take about two minutes (docs/benchmarks.md): a recompute
# pending for an hour has lost its task.
RECOMPUTE_LATE_AFTER = dt.timedelta(hours=1)


def pending_recomputes() -> list[tuple[PendingRecompute, bool]]:
    """Return the recomputes still pending, oldest first, each with whether it is late."""
    late_before = timezone.now() - RECOMPUTE_LATE_AFTER
    pending = PendingRecompute.objects.select_related("batch__credit_list").order_by("created_at")
    return [(row, row.created_at < late_before) for row in pending]


def defer_recompute(*, reason: str, batch_id: int | None = None) -> int:
    """Record a recompute the caller enqueues to run after its commit; return its id for the task."""
    return int(PendingRecompute.objects.create(batch_id=batch_id, reason=reason).pk)


def finish_recompute(pending_id: int | None) -> None:
    """Forget a deferred recompute once its restrictions are committed."""
    if pending_id is not None:
        PendingRecompute.objects.filter(pk=pending_id).delete()
