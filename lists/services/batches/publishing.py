"""Publish a validated batch: subjects, names, listings, the change feed, restrictions — at once.

Everything is written in one transaction of set-based SQL from the batch's plan (planning.py),
so a million-row batch publishes in seconds and a failure anywhere leaves the published data
as it was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from agencies.roles import has_role

from ...models import Batch, CreditList
from .. import measures
from ..feed import data_version, lock_feed, record_changes_sql
from ..subjects import NAME_COLUMNS, name_rows
from .diffing import compute_diff, feed_position
from .planning import Plan, build_plan, drop_plans, plan_params, prepared_plan, still_new
from .processing import BatchError, _audit
from .staging import analyze

logger = logging.getLogger(__name__)
# From the plan (planning.py): the new subjects, the added listings and their changes.
_INSERT_SUBJECTS = """
    INSERT INTO lists_subject (id, subject_type, name, name_en, aliases, former_names, uscc, org_code,
                               legacy_ids, person_id_hash, person_id_masked, region_code,
                               is_synthetic, created_at, updated_at)
    SELECT id, subject_type, name, name_en, aliases, '{}', uscc, COALESCE(org, substr(uscc, 9, 9), ''),
           CASE WHEN legacy IS NULL THEN '{}' ELSE ARRAY[legacy] END, pid_hash, pid_masked, region,
           %(synthetic)s, now(), now()
    FROM {new_subjects}
"""
_INSERT_LISTINGS = """
    INSERT INTO lists_listing (id, subject_id, credit_list_id, source_key, reference, reason, severity,
        decided_on, published_on, expires_on, status, extra, content_hash, first_batch_id,
        last_batch_id, first_seen_at, last_seen_at, last_changed_at, ended_at)
    -- With the status feed_data_sql shows for an added listing.
    SELECT listing_id, subject_id, %(list)s, source_key, reference, reason, severity, decided_on,
           published_on, expires_on, CASE WHEN expires_on < CURRENT_DATE THEN 'expired' ELSE 'active' END,
           extra, content_hash, %(batch)s, %(batch)s, now(), now(), now(),
           CASE WHEN expires_on < CURRENT_DATE THEN now() END
    FROM {added}
"""
# Their change-feed entries point at the batch rows, which hold their data (see Change.data):
# a million documents built and written again here were a third of the publication's time.
_INSERT_ADD_CHANGES = """
    INSERT INTO lists_change (op, reason, subject_id, listing_id, credit_list_id, batch_id, row_id, created_at)
    SELECT 'add', 'publish', subject_id, listing_id, %(list)s, %(batch)s, row_id, now() FROM {added}
"""
# A known subject whose name changed keeps the old one as a former name.
_RENAMED = """
    UPDATE lists_subject s SET
        former_names = CASE WHEN s.name <> p.name THEN array_append(s.former_names, s.name)
                            ELSE s.former_names END,
        name = p.name,
        name_en = CASE WHEN p.name_en <> '' THEN p.name_en ELSE s.name_en END,
        aliases = CASE WHEN cardinality(p.aliases) > 0 THEN p.aliases ELSE s.aliases END,
        updated_at = now()
    FROM (SELECT DISTINCT ON (subject_id) subject_id, name, name_en, aliases FROM {staged}
          WHERE subject_id IS NOT NULL ORDER BY subject_id, row_id) p
    WHERE s.id = p.subject_id AND (s.name <> p.name OR (p.name_en <> '' AND p.name_en <> s.name_en)
          OR (cardinality(p.aliases) > 0 AND p.aliases <> s.aliases))
    RETURNING s.id, s.name, s.name_en, s.aliases, s.former_names
"""
_LISTING_VALUES = """
    reference = p.reference, reason = p.reason, severity = p.severity, decided_on = p.decided_on,
    published_on = p.published_on, expires_on = p.expires_on, extra = p.extra, content_hash = p.content_hash
"""
# What a listing was before the batch touched it, kept on the row for an exact rollback.
_KEEP_BEFORE = """
    UPDATE lists_batchrow r SET diff = r.diff || jsonb_build_object('before', jsonb_build_object(
        'reference', l.reference, 'reason', l.reason, 'severity', l.severity,
        'decided_on', l.decided_on, 'published_on', l.published_on, 'expires_on', l.expires_on,
        'extra', l.extra, 'content_hash', l.content_hash, 'status', l.status, 'ended_at', l.ended_at,
        'last_batch_id', l.last_batch_id, 'last_changed_at', l.last_changed_at))
    FROM lists_listing l
    WHERE r.batch_id = %(batch)s AND r.action IN ('change', 'remove') AND l.id = r.listing_id
"""
_UPDATE_CHANGED = f"""
    UPDATE lists_listing l SET {_LISTING_VALUES},
        status = CASE WHEN p.expires_on < CURRENT_DATE THEN 'expired' ELSE l.status END,
        ended_at = CASE WHEN p.expires_on < CURRENT_DATE THEN now() ELSE l.ended_at END,
        last_batch_id = %(batch)s, last_seen_at = now(), last_changed_at = now()
    FROM {{staged}} p WHERE p.action = 'change' AND l.id = p.listing_id
"""  # noqa: S608 - composed from constants; values are parameters
# An unchanged listing takes the row's digest: equal content, but maybe digested another way.
# A snapshot's unchanged listings are seen through the list (Listing.seen_at): only a digest
# made another way is written, instead of every row of the list again.
_SEEN = """
    UPDATE lists_listing l SET {seen} content_hash = r.content_hash
    FROM lists_batchrow r WHERE r.batch_id = %(batch)s AND r.action = 'unchanged' AND l.id = r.listing_id
"""
_SEEN_IN_FILE = _SEEN.format(seen="last_seen_at = now(),")
_SEEN_IN_SNAPSHOT = _SEEN.format(seen="") + " AND l.content_hash <> r.content_hash"
# A removed listing keeps the time of the last snapshot that still confirmed it.
_REMOVE = """
    UPDATE lists_listing l SET status = 'revoked', ended_at = now(), last_changed_at = now(),
        last_batch_id = %(batch)s, last_seen_at = GREATEST(l.last_seen_at, %(last_snapshot)s)
    FROM lists_batchrow r
    WHERE r.batch_id = %(batch)s AND r.action = 'remove' AND l.id = r.listing_id
      AND l.status IN ('active', 'disputed')
"""
_UNINDEXED = """
    SELECT s.id, s.name, s.name_en, s.aliases, s.former_names FROM lists_subject s
    WHERE s.id IN ({added_subjects})
      AND NOT EXISTS (SELECT 1 FROM lists_subjectname n WHERE n.subject_id = s.id)
"""
NAME_CHUNK = 20_000
TOUCHED = "l.id IN (SELECT listing_id FROM lists_batchrow WHERE batch_id = %s AND action = %s)"
# A batch's added listings are those of its 'add' changes, a range of the feed's primary key:
# an index on listings' first_batch would cost an entry for every listing ever published.
_BATCH_ADDS = "SELECT {} FROM lists_change WHERE seq BETWEEN %s AND %s AND batch_id = %s AND op = 'add'"
ADDED = f"l.id IN ({_BATCH_ADDS.format('listing_id')})"


def _added_params(batch: Batch) -> list[Any]:
    return [batch.first_seq, batch.last_seq, batch.pk]


def touched_filter(batch: Batch, action: str) -> tuple[str, list[Any]]:
    """Return a SQL condition on `l` (and its parameters) for the listings of one action."""
    return (ADDED, _added_params(batch)) if action == "add" else (TOUCHED, [batch.pk, action])


FEED_OPS = (("change", "modify"), ("remove", "remove"))  # added ones: _INSERT_ADD_CHANGES
INLINE_MEASURES_MAX = 20_000
ANALYZED = ("lists_subject", "lists_listing", "lists_batchrow")


@contextmanager
def step(batch: Batch, label: str) -> Iterator[None]:
    """Log how long one publishing step took, for operators sizing big batches."""
    started = time.perf_counter()
    yield
    logger.info("batch %s publish: %s took %.1f s", batch.pk, label, time.perf_counter() - started)


def check_approver(batch: Batch, approver: Any, waived_by: str) -> None:
    """Raise BatchError unless a second person (or a recorded trusted source) approves."""
    if approver is None:
        if not waived_by:
            raise BatchError("publishing needs an approver or a recorded waiver")
        return
    if batch.uploaded_by_id is not None and approver.pk == batch.uploaded_by_id:
        raise BatchError("the person who uploaded a batch cannot also approve it (four-eyes rule)")
    if not has_role(approver, batch.credit_list.agency, "approver", "admin"):
        raise BatchError("only an approver or agency admin of the list's agency can publish")


def publish_batch(
    *,
    batch_id: int,
    approver: Any = None,
    waived_by: str = "",
    skip_invalid: bool = False,
    ip_address: str | None = None,
    queued: bool = False,
) -> Batch:
    """Publish a ready batch (`queued`: one marked publishing) in one transaction: all of it or nothing."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().select_related("credit_list__agency").get(pk=batch_id)
        credit_list = CreditList.objects.select_for_update().get(pk=batch.credit_list_id)
        expected = Batch.Status.PUBLISHING if queued else Batch.Status.READY
        check_publishable(batch, approver, waived_by, skip_invalid, expected=expected)
        # Under the list lock, re-diff if the list changed since validation (another batch,
        # an expiry, a repair): the preview the approver saw must be what gets published.
        if feed_position(credit_list.pk) != batch.counts.get("base_seq"):
            batch.counts = compute_diff(batch, last_line=int(batch.counts.get("last_line", 0)))
        params = {
            **plan_params(batch),
            "list": credit_list.pk,
            # A demo feed's new subjects carry the banner every page shows for demo data.
            "synthetic": bool(batch.source and batch.source.is_synthetic),
            "last_snapshot": credit_list.last_snapshot_at,
            "snapshot": batch.mode == Batch.Mode.SNAPSHOT,
        }
        rows = int(batch.counts.get("rows", 0))
        with connection.cursor() as cursor:
            # A million new subjects' keys then sort and join in memory, and the listing check's
            # transition table (~300 MB a million) stays out of a temp file (~2 s). Publications
            # are serialised by the feed lock, so one backend at a time uses this much.
            cursor.execute("SET LOCAL work_mem = '1GB'")
        lock_feed()  # under the lock every change after `before` is this batch's
        before = data_version()
        touched = _write_rows(batch, params)
        drop_plans(batch.pk)
        with step(batch, "change feed"):
            touched += _write_feed(batch, before)
        with step(batch, "restrictions"):
            # A big batch's ids are read again by the task: fetching a million here cost ~1 s.
            # So are its statistics: ANALYZE of three big tables is ~1.5 s of the list lock.
            ids = None
            if touched <= INLINE_MEASURES_MAX:
                analyze(*ANALYZED, rows=rows)
                ids = touched_listings(batch)
            derive_restrictions(batch, ids, reason="batch_removed", cause="publication")
        _finish(batch, credit_list, approver, waived_by, skip_invalid)
        _audit("batch.publish", batch, approver or waived_by, ip_address, {"counts": batch.counts})
    return batch


def derive_restrictions(batch: Batch, listing_ids: list[int] | None, *, reason: str, cause: str) -> None:
    """Recompute the restrictions of the touched listings: now, or right after commit if many.

    A list triggers a dozen measures or more, so a million listings mean tens of millions of
    restriction rows: that, and the search names of the new subjects, run in the
    apply_batch_measures task the moment the publication commits, rather than holding the
    list lock (and the feed lock) for minutes. `None` stands for more ids than that. Until
    the task has written them, checks derive what is in force (measures.in_force_sql).
    `reason` is recorded on lifted restrictions; `cause` on the pending recompute (publication, rollback).
    """
    if listing_ids is not None and len(listing_ids) <= INLINE_MEASURES_MAX:
        index_new_names(batch)  # nothing to do unless an earlier big run was interrupted
        measures.apply_measures(listing_ids=listing_ids, reason=reason)
        return
    from ... import tasks  # the tasks module imports the services: import it late

    pending = measures.defer_recompute(reason=cause, batch_id=batch.pk)
    tasks.apply_batch_measures.delay_on_commit(batch.pk, reason, pending)


def check_publishable(
    batch: Batch, approver: Any, waived_by: str, skip_invalid: bool, *, expected: str = Batch.Status.READY
) -> None:
    """Raise BatchError, saying why, unless `approver` may publish the batch now."""
    if batch.status != expected:
        raise BatchError(f"only a batch ready for approval can be published (this one is {batch.status})")
    check_approver(batch, approver, waived_by)
    if batch.counts.get("invalid") and not skip_invalid:
        raise BatchError(
            f"{batch.counts['invalid']} rows are invalid: fix and upload again, or publish without them"
        )


class StalePlan(Exception):
    """A subject the prepared plan would create exists now."""


def _write_rows(batch: Batch, params: dict[str, Any]) -> int:
    """Write the batch's subjects, listings and the changes of those added; return how many added.

    From the plan prepared while the batch awaited approval if it still holds, else from one
    made now. A plan stops holding when a subject it would create has been created since, found
    by a lookup (still_new) or, for a unique identifier, by the insert failing.
    """
    plan = prepared_plan(batch)
    if plan is not None:
        try:
            with transaction.atomic(), step(batch, "subjects, listings and changes from the prepared plan"):
                if not still_new(plan):
                    raise StalePlan
                return _write_from(plan, params, batch.counts)
        except (StalePlan, IntegrityError) as exc:  # the message could quote a row: the class only
            logger.warning(
                "batch %s publish: the prepared plan no longer holds (%s)", batch.pk, type(exc).__name__
            )
    plan = Plan.inline()
    with step(batch, "planning: staging, known subjects, new ids"):
        build_plan(plan, params)
    with step(batch, "subjects, listings and changes"):
        added = _write_from(plan, params, batch.counts)
    with connection.cursor() as cursor:
        cursor.execute(plan.drop())
    return added


def index_new_names(batch: Batch) -> int:
    """Write the search names of the batch's subjects that have none yet; return how many.

    Deriving search forms (pinyin, bigrams) costs about half a millisecond per name, so for
    a big batch it runs right after the publication commits (see derive_restrictions).
    """
    first, last = batch.first_seq, batch.last_seq
    if first is None or last is None:  # the batch wrote no change
        return 0
    sql = _UNINDEXED.format(added_subjects=_BATCH_ADDS.format("subject_id"))
    done = 0
    # By slices of the batch's feed range (its primary key): each slice is a cheap range scan,
    # where 20,000 ids in an array cost the planner ~0.2 s per query.
    for start in range(first, last + 1, NAME_CHUNK):
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, [start, min(start + NAME_CHUNK - 1, last), batch.pk])
                chunk = cursor.fetchall()
            _index_names(chunk, replace=False)
        done += len(chunk)
    return done


def _index_names(subjects: list[tuple[Any, ...]], *, replace: bool) -> None:
    """Write SubjectName rows for subjects whose names are new or changed."""
    if not subjects:
        return
    with connection.cursor() as cursor:
        if replace:
            cursor.execute(
                "DELETE FROM lists_subjectname WHERE subject_id = ANY(%s)", [[s[0] for s in subjects]]
            )
    connection.ensure_connection()
    columns = ", ".join(NAME_COLUMNS)
    with (
        connection.connection.cursor() as cursor,
        cursor.copy(f"COPY lists_subjectname ({columns}) FROM STDIN") as copy,
    ):  # noqa: S608
        for subject_id, name, name_en, aliases, former in subjects:
            names = {"name": name, "aliases": list(aliases), "former_names": list(former), "name_en": name_en}
            for row in name_rows(subject_id, **names):
                copy.write_row(row)


def _write_from(plan: Plan, params: dict[str, Any], counts: dict[str, Any]) -> int:
    """Write what the plan says and the batch's other actions; return how many listings were added."""
    changed, removed = counts.get("change"), counts.get("remove")
    with connection.cursor() as cursor:
        cursor.execute(plan.fill(_RENAMED))
        renamed = cursor.fetchall()
        # Each statement but the inserts reads the batch's rows of one action: skipped when the
        # diff found none (the unchanged ones are every row of the batch to scan, ~0.6 s a million).
        if changed or removed:
            cursor.execute(_KEEP_BEFORE, params)
        if changed:
            cursor.execute(plan.fill(_UPDATE_CHANGED), params)
        cursor.execute(plan.fill(_INSERT_SUBJECTS), params)
        cursor.execute(plan.fill(_INSERT_LISTINGS), params)
        cursor.execute(plan.fill(_INSERT_ADD_CHANGES), params)
        added = cursor.rowcount
        if removed:
            cursor.execute(_REMOVE, params)
        if counts.get("unchanged"):
            cursor.execute(_SEEN_IN_SNAPSHOT if params["snapshot"] else _SEEN_IN_FILE, params)
    # New subjects' names are indexed by index_new_names, once the batch's changes are written.
    _index_names(renamed, replace=True)
    return added


def _write_feed(batch: Batch, before: int) -> int:
    """Write one change per listing changed or removed (added ones have theirs); return how many.

    Also records the batch's range of the feed: every change after `before` is the batch's.
    """
    touched = sum(
        record_changes_sql(*touched_filter(batch, action), op=op, reason="publish", batch_id=batch.pk)
        for action, op in FEED_OPS
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(seq), max(seq) FROM lists_change WHERE seq > %s", [before])
        batch.first_seq, batch.last_seq = cursor.fetchone()
    return touched


def touched_listings(batch: Batch) -> list[int]:
    """Return the ids of the listings a batch adds, changes or removes."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT listing_id FROM lists_batchrow WHERE batch_id = %s AND action IN ('change', 'remove')"  # noqa: S608
            f" AND listing_id IS NOT NULL UNION {_BATCH_ADDS.format('listing_id')}",
            [batch.pk, *_added_params(batch)],
        )
        return [row[0] for row in cursor.fetchall()]


def _finish(batch: Batch, credit_list: CreditList, approver: Any, waived_by: str, skip_invalid: bool) -> None:
    now = timezone.now()
    batch.status, batch.published_at = Batch.Status.PUBLISHED, now
    batch.approved_at = batch.approved_at or now  # a queued publication keeps when it was asked for
    batch.approved_by, batch.approval_waived_by, batch.skip_invalid = approver, waived_by[:200], skip_invalid
    batch.error = ""  # why an earlier attempt was not published (queued.py)
    batch.save(
        update_fields=[
            "status", "published_at", "approved_at", "approved_by", "approval_waived_by", "skip_invalid",
            "counts", "first_seq", "last_seq", "error",
        ]
    )  # fmt: skip
    credit_list.last_published_at = now
    if batch.mode == Batch.Mode.SNAPSHOT:
        credit_list.last_snapshot_at = now
    credit_list.save(update_fields=["last_published_at", "last_snapshot_at"])
