"""Publish a validated batch: subjects, names, listings, the change feed, restrictions — at once.

Everything runs in one transaction of set-based SQL over the staged rows, so a million-row
batch publishes in seconds and a failure anywhere leaves the published data as it was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from agencies.roles import has_role

from ...models import Batch, CreditList
from ...models.subjects import legacy_id_condition
from .. import measures
from ..feed import ROW_VALUES_SQL, data_version, lock_feed, record_changes_sql
from ..subjects import NAME_COLUMNS, name_rows
from .diffing import compute_diff, feed_position
from .processing import BatchError, _audit
from .staging import INTERNAL_KEYS, analyze

logger = logging.getLogger(__name__)
CORE_DATA_KEYS = [
    *INTERNAL_KEYS, "name", "name_en", "aliases", "region", "subject_type",
    "reference", "reason", "decided_on", "published_on", "expires_on",
]  # fmt: skip

# ON COMMIT DROP is not enough: inside an outer transaction (a test, a sync run) the table
# outlives this savepoint, so it is dropped explicitly before and after.
_DROP = "DROP TABLE IF EXISTS _pub"
# The listing's columns are taken out of `data` here rather than staging the whole document:
# every step below reads the staged table again, and a third of the width reads faster.
_STAGE = """
    CREATE TEMP TABLE _pub ON COMMIT DROP AS
    SELECT q.*, COALESCE('u:' || uscc, 'p:' || pid_hash, 'l:' || legacy, 'o:' || org,
                         'n:' || name || '|' || region) COLLATE "C" AS skey
    FROM (
    SELECT r.id AS row_id, r.action, r.source_key, r.content_hash, r.listing_id,
           {row_values}, r.data - %(core)s::text[] AS extra,
           l.subject_id AS subject_id,
           COALESCE(NULLIF(r.data->>'subject_type', ''), %(default_type)s) AS subject_type,
           r.data->>'name' AS name,
           COALESCE(r.data->>'name_en', '') AS name_en,
           CASE WHEN r.data ? 'aliases' THEN  -- most rows have none: the subquery cost ~1 s a million
               ARRAY(SELECT jsonb_array_elements_text(r.data->'aliases'))::varchar(300)[]
           ELSE '{}' END AS aliases,
           COALESCE(r.data->>'region', '') AS region,
           CASE WHEN r.data->>'identifier_kind' = 'uscc' THEN r.data->>'identifier' END AS uscc,
           r.data->>'person_id_hash' AS pid_hash,
           CASE WHEN r.data->>'person_id_hash' IS NOT NULL THEN r.data->>'identifier' ELSE '' END AS pid_masked,
           CASE WHEN r.data->>'identifier_kind' = 'legacy_reg' THEN r.data->>'identifier' END AS legacy,
           CASE WHEN r.data->>'identifier_kind' = 'org_code' THEN r.data->>'identifier' END AS org
    FROM lists_batchrow r LEFT JOIN lists_listing l ON l.id = r.listing_id
    WHERE r.batch_id = %(batch)s AND r.action IN ('add', 'change') AND r.outcome <> 'invalid'
    ) q;  -- the key is computed here: an UPDATE afterwards rewrote every staged row once more
    ANALYZE _pub;
""".replace("{row_values}", ", ".join(f"{sql} AS {name}" for name, sql in ROW_VALUES_SQL.items()))
_RESOLVE = [
    """UPDATE _pub p SET subject_id = s.id FROM lists_subject s
       WHERE p.subject_id IS NULL AND p.uscc IS NOT NULL AND s.uscc = p.uscc""",
    """UPDATE _pub p SET subject_id = s.id FROM lists_subject s
       WHERE p.subject_id IS NULL AND p.pid_hash IS NOT NULL AND s.person_id_hash = p.pid_hash""",
    f"""UPDATE _pub p SET subject_id = (SELECT min(s.id) FROM lists_subject s
                                        WHERE {legacy_id_condition("s.legacy_ids", "p.legacy")})
        WHERE p.subject_id IS NULL AND p.legacy IS NOT NULL""",  # noqa: S608 - constants
    """UPDATE _pub p SET subject_id = (SELECT min(s.id) FROM lists_subject s WHERE s.org_code = p.org)
       WHERE p.subject_id IS NULL AND p.org IS NOT NULL""",
    """UPDATE _pub p SET subject_id = m.id FROM (
           SELECT min(s.id) AS id, s.name, s.region_code FROM lists_subject s
           JOIN (SELECT DISTINCT name, region FROM _pub WHERE subject_id IS NULL AND uscc IS NULL
                 AND pid_hash IS NULL AND legacy IS NULL AND org IS NULL) q
             ON q.name = s.name AND q.region = s.region_code
           GROUP BY s.name, s.region_code) m
       WHERE p.subject_id IS NULL AND p.uscc IS NULL AND p.pid_hash IS NULL AND p.legacy IS NULL
         AND p.org IS NULL AND m.name = p.name AND m.region_code = p.region""",
]
# The staged rows each lookup above may resolve. One scan counts them all: a batch usually has
# one kind of identifier, and each lookup otherwise scans every staged row to find none.
_RESOLVABLE = [
    "uscc IS NOT NULL", "pid_hash IS NOT NULL", "legacy IS NOT NULL", "org IS NOT NULL",
    "uscc IS NULL AND pid_hash IS NULL AND legacy IS NULL AND org IS NULL",
]  # fmt: skip
_CANDIDATES = "SELECT {} FROM _pub WHERE subject_id IS NULL".format(  # noqa: S608 - constants
    ", ".join(f"count(*) FILTER (WHERE {rows})" for rows in _RESOLVABLE)
)
# A staged row without a subject gets a new one, one per key: equal keys resolve to the same
# subject (the key is the identifier the lookups above use). The key sorts in "C": byte order is
# all that is needed, and a locale comparison cost a second per million keys.
# One statement writes the new subjects, the added listings and their changes from CTEs held in
# memory: a temporary table of new subjects, written and then joined twice, cost seconds a
# million. Ids are drawn here rather than read back with RETURNING. A missing subject leaves
# subject_id NULL, which fails.
_ADD = """
    WITH new_subjects AS MATERIALIZED (
        SELECT nextval(%(subject_ids)s::regclass) AS id, src.* FROM (
            SELECT DISTINCT ON (skey) skey, subject_type, name, name_en, aliases, region, uscc, pid_hash,
                   pid_masked, legacy, org
            FROM _pub WHERE subject_id IS NULL ORDER BY skey, row_id) src
    ), subjects AS (
        INSERT INTO lists_subject (id, subject_type, name, name_en, aliases, former_names, uscc, org_code,
                                   legacy_ids, person_id_hash, person_id_masked, region_code,
                                   is_synthetic, created_at, updated_at)
        SELECT id, subject_type, name, name_en, aliases, '{}', uscc, COALESCE(org, substr(uscc, 9, 9), ''),
               CASE WHEN legacy IS NULL THEN '{}' ELSE ARRAY[legacy] END, pid_hash, pid_masked, region,
               %(synthetic)s, now(), now()
        FROM new_subjects
    ), added AS MATERIALIZED (
        SELECT nextval(%(listing_ids)s::regclass) AS listing_id, COALESCE(p.subject_id, n.id) AS subject_id,
               p.row_id, p.source_key, p.reference, p.reason, p.severity, p.decided_on, p.published_on,
               p.expires_on, p.extra, p.content_hash
        FROM _pub p LEFT JOIN new_subjects n ON p.subject_id IS NULL AND n.skey = p.skey
        WHERE p.action = 'add'
    ), listings AS (
        INSERT INTO lists_listing (id, subject_id, credit_list_id, source_key, reference, reason, severity,
            decided_on, published_on, expires_on, status, extra, content_hash, first_batch_id,
            last_batch_id, first_seen_at, last_seen_at, last_changed_at, ended_at)
        -- With the status feed_data_sql shows for an added listing.
        SELECT listing_id, subject_id, %(list)s, source_key, reference, reason, severity, decided_on,
               published_on, expires_on, CASE WHEN expires_on < CURRENT_DATE THEN 'expired' ELSE 'active' END,
               extra, content_hash, %(batch)s, %(batch)s, now(), now(), now(),
               CASE WHEN expires_on < CURRENT_DATE THEN now() END
        FROM added
    )
    -- Their change-feed entries point at the batch rows, which hold their data (see Change.data):
    -- a million documents built and written again here were a third of the publication's time.
    INSERT INTO lists_change (op, reason, subject_id, listing_id, credit_list_id, batch_id, row_id, created_at)
    SELECT 'add', 'publish', subject_id, listing_id, %(list)s, %(batch)s, row_id, now() FROM added
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
    FROM (SELECT DISTINCT ON (subject_id) subject_id, name, name_en, aliases FROM _pub
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
    FROM _pub p WHERE p.action = 'change' AND l.id = p.listing_id
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


LISTING_ID_SEQUENCE, SUBJECT_ID_SEQUENCE = "lists_listing_id_seq", "lists_subject_id_seq"
FEED_OPS = (("change", "modify"), ("remove", "remove"))  # added ones: _ADD
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
            "batch": batch.pk,
            "list": credit_list.pk,
            "core": CORE_DATA_KEYS,
            "default_type": (credit_list.subject_types or ["legal_person"])[0],
            "listing_ids": LISTING_ID_SEQUENCE,
            "subject_ids": SUBJECT_ID_SEQUENCE,
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
        with step(batch, "staging and known subjects"):
            _write_subjects(params)
        with step(batch, "new subjects, listings and their changes"):
            touched = _write_listings(params, batch.counts)
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


def _write_subjects(params: dict[str, Any]) -> None:
    """Stage the batch's rows, find their known subjects and update those renamed."""
    with connection.cursor() as cursor:
        cursor.execute(_DROP)
        cursor.execute(_STAGE, params)
        cursor.execute(_CANDIDATES)
        for count, sql in zip(cursor.fetchone(), _RESOLVE, strict=True):
            if count:
                cursor.execute(sql)
        cursor.execute(_RENAMED)
        renamed = cursor.fetchall()
    # New subjects' names are indexed by index_new_names, once the batch's changes are written.
    _index_names(renamed, replace=True)


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


def _write_listings(params: dict[str, Any], counts: dict[str, Any]) -> int:
    """Write the batch's new subjects, its listings and the changes of those added; return how many added."""
    changed, removed = counts.get("change"), counts.get("remove")
    with connection.cursor() as cursor:
        # Each statement but the inserts reads the batch's rows of one action: skipped when the
        # diff found none (the unchanged ones are every row of the batch to scan, ~0.6 s a million).
        if changed or removed:
            cursor.execute(_KEEP_BEFORE, params)
        if changed:
            cursor.execute(_UPDATE_CHANGED, params)
        cursor.execute(_ADD, params)
        added = cursor.rowcount
        if removed:
            cursor.execute(_REMOVE, params)
        if counts.get("unchanged"):
            cursor.execute(_SEEN_IN_SNAPSHOT if params["snapshot"] else _SEEN_IN_FILE, params)
        cursor.execute(_DROP)
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
