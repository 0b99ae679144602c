"""Plan a publication: stage the batch's rows, find their subjects, draw the new ids.

A publication writes from three tables: the staged rows, the new subjects and the added
listings, each with its id drawn. Building them reads and sorts every row of the batch, a
third of a million-row publication's time. For a big batch they are built while it awaits
approval (the prepare_publication task, into unlogged tables named after the batch), so that
approving only writes. Nothing reads these tables but the publication: no page, feed or check
can see a row nobody approved. The publication then uses the plan only while it still holds
(prepared_plan, still_new), and otherwise builds it again inside its transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction

from ...models import Batch
from ...models.subjects import legacy_id_condition
from ..feed import ROW_VALUES_SQL
from .staging import INTERNAL_KEYS

logger = logging.getLogger(__name__)
# Below this many new and changed rows, planning inside the publication takes a second or two.
PREPARE_ROWS = 50_000
PREPARED_PREFIX = "lists_plan_"
HOLD_BATCH = "SELECT 1 FROM lists_batch WHERE id = %s FOR KEY SHARE"
# Statuses whose prepared plan may still be used: the others' are dropped (drop_plans).
_PLANNED = (Batch.Status.READY, Batch.Status.PUBLISHING)
LISTING_ID_SEQUENCE, SUBJECT_ID_SEQUENCE = "lists_listing_id_seq", "lists_subject_id_seq"
CORE_DATA_KEYS = [
    *INTERNAL_KEYS, "name", "name_en", "aliases", "region", "subject_type",
    "reference", "reason", "decided_on", "published_on", "expires_on",
]  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """The tables one publication writes from."""

    staged: str
    new_subjects: str
    added: str
    prepared: bool

    @classmethod
    def inline(cls) -> Plan:
        return cls("_pub", "_pub_new", "_pub_added", prepared=False)

    @classmethod
    def of(cls, batch: Batch) -> Plan:
        """The prepared plan of the batch as validated against its list's current position."""
        name = f"{PREPARED_PREFIX}{batch.pk}_{int(batch.counts.get('base_seq') or 0)}"
        return cls(name, f"{name}_new", f"{name}_added", prepared=True)

    @property
    def create(self) -> str:
        # ON COMMIT DROP is not enough: inside an outer transaction (a test, a sync run) a
        # temporary table outlives the publication's savepoint, so it is also dropped explicitly.
        return "CREATE UNLOGGED TABLE {}" if self.prepared else "CREATE TEMP TABLE {} ON COMMIT DROP"

    def drop(self) -> str:
        return f"DROP TABLE IF EXISTS {self.staged}, {self.new_subjects}, {self.added}"

    def fill(self, template: str, creating: str = "") -> str:
        """Put the plan's table names into SQL (by replacing: the SQL holds literal braces)."""
        sql = template.replace("{create}", self.create.format(creating))
        for name in ("staged", "new_subjects", "added"):
            sql = sql.replace("{" + name + "}", getattr(self, name))
        return sql


# The listing's columns are taken out of `data` here rather than staging the whole document:
# every step below reads the staged table again, and a third of the width reads faster.
_STAGE = """
    {create} AS
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
    ANALYZE {staged};
""".replace("{row_values}", ", ".join(f"{sql} AS {name}" for name, sql in ROW_VALUES_SQL.items()))
# Each lookup finds the known subject of staged rows of one kind of identifier. A row has one.
_LOOKUPS = [
    """UPDATE {staged} p SET subject_id = s.id FROM lists_subject s
       WHERE p.subject_id IS NULL AND p.uscc IS NOT NULL AND s.uscc = p.uscc""",
    """UPDATE {staged} p SET subject_id = s.id FROM lists_subject s
       WHERE p.subject_id IS NULL AND p.pid_hash IS NOT NULL AND s.person_id_hash = p.pid_hash""",
    f"""UPDATE {{staged}} p SET subject_id = (SELECT min(s.id) FROM lists_subject s
                                          WHERE {legacy_id_condition("s.legacy_ids", "p.legacy")})
        WHERE p.subject_id IS NULL AND p.legacy IS NOT NULL""",  # noqa: S608 - constants
    """UPDATE {staged} p SET subject_id = (SELECT min(s.id) FROM lists_subject s WHERE s.org_code = p.org)
       WHERE p.subject_id IS NULL AND p.org IS NOT NULL""",
    """UPDATE {staged} p SET subject_id = m.id FROM (
           SELECT min(s.id) AS id, s.name, s.region_code FROM lists_subject s
           JOIN (SELECT DISTINCT name, region FROM {staged} WHERE subject_id IS NULL AND uscc IS NULL
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
_CANDIDATES = "SELECT {} FROM {{staged}} WHERE subject_id IS NULL".format(  # noqa: S608 - constants
    ", ".join(f"count(*) FILTER (WHERE {rows})" for rows in _RESOLVABLE)
)
# Subjects that a later publication may have created under a plan's feet without a unique index
# refusing the plan's own (USCC and ID-number hash are unique: inserting the plan fails).
_NOT_UNIQUE = (2, 3, 4)
# A staged row without a subject gets a new one, one per key: equal keys resolve to the same
# subject (the key is the identifier the lookups above use). The key sorts in "C": byte order is
# all that is needed, and a locale comparison cost a second per million keys. Ids are drawn here
# rather than read back with RETURNING, in key order.
_NEW_SUBJECTS = """
    {create} AS
    SELECT nextval(%(subject_ids)s::regclass) AS id, src.* FROM (
        SELECT DISTINCT ON (skey) skey, subject_type, name, name_en, aliases, region, uscc, pid_hash,
               pid_masked, legacy, org
        FROM {staged} WHERE subject_id IS NULL ORDER BY skey, row_id) src
"""
_ADDED = """
    {create} AS
    SELECT nextval(%(listing_ids)s::regclass) AS listing_id, COALESCE(p.subject_id, n.id) AS subject_id,
           p.row_id, p.source_key, p.reference, p.reason, p.severity, p.decided_on, p.published_on,
           p.expires_on, p.extra, p.content_hash
    FROM {staged} p LEFT JOIN {new_subjects} n ON p.subject_id IS NULL AND n.skey = p.skey
    WHERE p.action = 'add'
"""


def plan_params(batch: Batch) -> dict[str, Any]:
    """Return the parameters of the planning statements for a batch."""
    return {
        "batch": batch.pk,
        "core": CORE_DATA_KEYS,
        "default_type": (batch.credit_list.subject_types or ["legal_person"])[0],
        "listing_ids": LISTING_ID_SEQUENCE,
        "subject_ids": SUBJECT_ID_SEQUENCE,
    }


def build_plan(plan: Plan, params: dict[str, Any]) -> None:
    """Write the plan's three tables (dropping any earlier ones of the same names)."""
    with connection.cursor() as cursor:
        cursor.execute(plan.drop())
        cursor.execute(plan.fill(_STAGE, plan.staged), params)
    resolve_subjects(plan)
    with connection.cursor() as cursor:
        cursor.execute(plan.fill(_NEW_SUBJECTS, plan.new_subjects), params)
        cursor.execute(plan.fill(_ADDED, plan.added), params)


def resolve_subjects(plan: Plan, lookups: tuple[int, ...] = tuple(range(len(_LOOKUPS)))) -> int:
    """Find the known subjects of staged rows that have none; return how many rows found one."""
    found = 0
    with connection.cursor() as cursor:
        cursor.execute(plan.fill(_CANDIDATES))
        candidates = cursor.fetchone()
        for i in lookups:
            if candidates[i]:
                cursor.execute(plan.fill(_LOOKUPS[i]))
                found += cursor.rowcount
    return found


def still_new(plan: Plan) -> bool:
    """Whether the subjects a prepared plan creates are still unknown (see _NOT_UNIQUE)."""
    return resolve_subjects(plan, _NOT_UNIQUE) == 0


def worth_preparing(counts: dict[str, Any]) -> bool:
    """Whether a batch of these counts is planned before approval: a plan is of its new and changed rows."""
    return int(counts.get("add", 0)) + int(counts.get("change", 0)) >= PREPARE_ROWS


def prepared_plan(batch: Batch) -> Plan | None:
    """Return the batch's prepared plan if one was made against its list's current position.

    A crash empties unlogged tables (all of them, never part of one): an empty plan is no plan.
    """
    plan = Plan.of(batch)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [plan.staged])
        if not cursor.fetchone()[0]:
            return None
        cursor.execute(plan.fill("SELECT EXISTS (SELECT 1 FROM {staged})"))
        return plan if cursor.fetchone()[0] else None


def prepare_publication(batch_id: int) -> bool:
    """Plan a big ready batch's publication while it awaits approval; return whether a plan was made.

    Takes about a third of the publication's time. Meanwhile the batch row is held so that the
    publication, a new mapping or a rejection (FOR UPDATE) waits until the plan is whole, and a
    plan always describes the rows it was made from. The approver's click only marks the batch
    (FOR NO KEY UPDATE, queued.py) and does not wait.
    """
    drop_plans()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(HOLD_BATCH, [batch_id])
        batch = Batch.objects.select_related("credit_list").get(pk=batch_id)
        if batch.status != Batch.Status.READY or not worth_preparing(batch.counts):
            return False
        if prepared_plan(batch) is not None:  # a second run of the task
            return False
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL work_mem = '1GB'")  # as the publication: sorts in memory
        build_plan(Plan.of(batch), plan_params(batch))
    logger.info("batch %s: publication prepared", batch_id)
    return True


def drop_plans(batch_id: int | None = None) -> None:
    """Drop the prepared plans of one batch, or of every batch that can no longer use its own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE %s",
            [PREPARED_PREFIX.replace("_", r"\_") + "%"],
        )
        tables = {name: int(name.split("_")[2]) for (name,) in cursor.fetchall()}
        if batch_id is None:
            planned = Batch.objects.filter(pk__in=set(tables.values()), status__in=_PLANNED)
            keep = set(planned.values_list("pk", flat=True))
            doomed = [name for name, owner in tables.items() if owner not in keep]
        else:
            doomed = [name for name, owner in tables.items() if owner == batch_id]
        if doomed:
            cursor.execute("DROP TABLE IF EXISTS " + ", ".join(doomed))  # names from the catalogue
