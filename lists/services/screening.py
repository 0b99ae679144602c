"""Screen up to a thousand names and identifiers at once against every subject.

Each matching feature is one set-based SQL statement for all queries of the request (arrays
passed with unnest, a LATERAL lookup per query row that uses the feature's index), so a
1,000-query request costs a handful of round trips, not a thousand searches. Everything is read
in one REPEATABLE READ snapshot, and candidates are ordered by (score desc, subject id), so the
same request on the same data version gives the same answer.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from .. import identifiers as ids
from ..models.subjects import legacy_id_condition
from ..search.bigrams import bigram_weights, gin_tsquery  # one notion of a rare bigram
from ..search.text import QueryForms, query_forms
from .measures import in_force_sql

DEFAULT_THRESHOLD = 0.7
DEFAULT_LIMIT = 10
# A LATERAL lookup keeps at most this many rows per query and feature (a common short name).
# Its ORDER BY is on `subject_id + 0`: ordering by the bare column lets the planner walk the
# subject_id index in order, filtering a million rows, instead of using the feature's index.
ROWS_PER_FEATURE = 50

# Feature → score when it alone matched. Several features on one subject add a small bonus.
SCORES = {
    "identifier": 1.0,
    "exact_name": 0.97,
    "alias": 0.92,
    "english": 0.9,
    "former_name": 0.88,
    "core_name": 0.85,
    "pinyin": 0.75,
    "fuzzy": 0.6,  # plus up to 0.3 for how much of the stored core the query covers
    "initials": 0.6,
}
BONUS_PER_EXTRA_FEATURE = 0.01


@dataclass(frozen=True)
class ScreenQuery:
    """One thing to screen: a name and/or identifier, optionally narrowed by type and region."""

    name: str = ""
    identifier: str = ""
    subject_type: str = ""
    region: str = ""


@dataclass
class Candidate:
    subject_id: int
    score: float
    matched: list[str]
    subject: dict[str, Any] = field(default_factory=dict)
    listings: list[dict[str, Any]] = field(default_factory=list)
    restrictions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ScreenResult:
    data_version: int
    threshold: float
    results: list[list[Candidate]]


def screen(
    queries: Sequence[ScreenQuery], *, threshold: float = DEFAULT_THRESHOLD, limit: int = DEFAULT_LIMIT
) -> ScreenResult:
    """Return, for each query, the candidates scoring at least `threshold`, best first."""
    forms = [query_forms(q.name) if q.name.strip() else None for q in queries]
    with read_snapshot() as cursor:
        data_version = _data_version(cursor)
        features = _identifier_features(cursor, queries)
        id_hits = {i for i, hits in features.items() if hits}
        _name_features(cursor, forms, features)
        _fuzzy_features(cursor, forms, features)
        scored = _score(queries, features, id_hits, threshold)
        subject_ids = sorted({c.subject_id for cands in scored for c in cands})
        subjects = _subjects(cursor, subject_ids)
        results = [_narrow(q, cands, subjects, limit) for q, cands in zip(queries, scored, strict=True)]
        kept = sorted({c.subject_id for cands in results for c in cands})
        listings = _listings(cursor, kept)
        shown = {listing["id"] for of_subject in listings.values() for listing in of_subject}
        restrictions = _restrictions(cursor, kept, shown)
    for cands in results:
        for c in cands:
            c.subject = subjects[c.subject_id]
            c.listings = listings.get(c.subject_id, [])
            c.restrictions = restrictions.get(c.subject_id, [])
    return ScreenResult(data_version=data_version, threshold=threshold, results=results)


@contextmanager
def read_snapshot() -> Iterator[Any]:
    """Yield a cursor whose statements all see one snapshot (REPEATABLE READ, read only).

    Inside an enclosing transaction (a test, a caller's atomic block) that transaction's
    isolation stands: PostgreSQL only lets the first statement of a transaction set it.
    """
    nested = connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        if not nested:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield cursor


def _data_version(cursor: Any) -> int:
    cursor.execute("SELECT COALESCE(MAX(seq), 0) FROM lists_change")
    return int(cursor.fetchone()[0])


Features = dict[int, dict[int, set[str]]]  # query index → subject id → matched features


def lookup_identifier(text: str) -> tuple[str, str] | None:
    """Return (subject column, lookup value) for an identifier, or None if it is not one.

    A personal ID number is looked up by its keyed hash; the number itself goes nowhere.
    """
    ident = ids.classify_identifier(text)
    if ident.kind == ids.PERSON_ID and not ident.errors:
        return "person_id_hash", ids.person_id_hash(ident.value)
    if ident.kind == ids.USCC and not ident.errors:
        return "uscc", ident.value
    if ident.kind == ids.ORG_CODE:
        return "org_code", ident.value
    if ident.kind == ids.LEGACY_REG:
        return "legacy_ids", ident.value
    return None


_ID_SQL = {
    "uscc": "s.uscc = q.v",
    "person_id_hash": "s.person_id_hash = q.v",
    "org_code": "s.org_code = q.v",
    "legacy_ids": legacy_id_condition("s.legacy_ids", "q.v"),
}


def _identifier_features(cursor: Any, queries: Sequence[ScreenQuery]) -> Features:
    """Match identifiers exactly: one statement per identifier kind for all queries."""
    features: Features = defaultdict(dict)
    by_column: dict[str, tuple[list[int], list[str]]] = defaultdict(lambda: ([], []))
    for i, q in enumerate(queries):
        found = lookup_identifier(q.identifier) if q.identifier.strip() else None
        if found:
            by_column[found[0]][0].append(i)
            by_column[found[0]][1].append(found[1])
    for column, (indexes, values) in sorted(by_column.items()):
        cursor.execute(
            f"""SELECT q.i, s.id FROM unnest(%s::int[], %s::text[]) AS q(i, v)
                JOIN lists_subject s ON {_ID_SQL[column]}""",  # noqa: S608 - fixed SQL per column
            [indexes, values],
        )
        for i, subject_id in cursor.fetchall():
            features[i].setdefault(subject_id, set()).add("identifier")
    return features


# (feature name, stored column, which query form, extra condition on the name row)
_NAME_TIERS: list[tuple[str, str, str]] = [
    ("normalized", "normalized", ""),
    ("core", "core", ""),
    ("latin", "latin", "AND n.latin <> ''"),
    ("pinyin", "pinyin", "AND n.pinyin <> ''"),
    ("initials", "initials", "AND n.initials <> ''"),
]


def _name_features(cursor: Any, forms: Sequence[QueryForms | None], features: Features) -> None:
    """Match names by exact equality on each derived column, one statement per column."""
    for column, form, condition in _NAME_TIERS:
        indexes, values = _tier_values(forms, form)
        if not indexes:
            continue
        cursor.execute(
            f"""SELECT q.i, m.subject_id, m.kind FROM unnest(%s::int[], %s::text[]) AS q(i, v)
                CROSS JOIN LATERAL (
                    SELECT n.subject_id, n.kind FROM lists_subjectname n
                    WHERE n.{column} = q.v {condition}
                    ORDER BY n.subject_id + 0 LIMIT %s) m""",  # noqa: S608 - fixed SQL per tier
            [indexes, values, ROWS_PER_FEATURE],
        )
        for i, subject_id, kind in cursor.fetchall():
            features[i].setdefault(subject_id, set()).add(_feature(form, kind))


def _fuzzy_features(cursor: Any, forms: Sequence[QueryForms | None], features: Features) -> None:
    """Match a query's core inside longer stored cores, for queries no stronger feature matched.

    The bigram index is asked only for the query's rarest bigrams (the public search's weights:
    a posting list like 贸易's costs more than rechecking rows), strpos then checks the whole core.
    The score grows with the share of the stored core that the query covers.
    """
    weights = bigram_weights(cursor)
    indexes, cores, tsqueries = [], [], []
    for i, f in enumerate(forms):
        strong = any(_points(x) >= SCORES["core_name"] for fs in features.get(i, {}).values() for x in fs)
        tsquery = gin_tsquery(f.core_bigrams or f.bigrams, weights) if f and len(f.core) >= 2 else ""
        if f is not None and not f.is_too_broad and tsquery and not strong:
            indexes.append(i)
            cores.append(f.core)
            tsqueries.append(tsquery)
    if not indexes:
        return
    cursor.execute(
        """SELECT q.i, m.subject_id, length(q.v)::float / length(m.core)
           FROM unnest(%s::int[], %s::text[], %s::text[]) AS q(i, v, t)
           CROSS JOIN LATERAL (
               SELECT n.subject_id, n.core FROM lists_subjectname n
               WHERE n.search_vector @@ to_tsquery('simple', q.t)
                 AND strpos(n.core, q.v) > 0 AND n.core <> q.v
               ORDER BY n.subject_id + 0 LIMIT %s) m""",
        [indexes, cores, tsqueries, ROWS_PER_FEATURE],
    )
    for i, subject_id, covered in cursor.fetchall():
        fuzzy = features[i].setdefault(subject_id, set())
        fuzzy.add(f"fuzzy:{round(0.3 * covered, 4)}")


def _tier_values(forms: Sequence[QueryForms | None], form: str) -> tuple[list[int], list[str]]:
    """Return parallel (query index, value) lists of the queries that have this form."""
    indexes: list[int] = []
    values: list[str] = []
    for i, f in enumerate(forms):
        if f is None or f.is_too_broad:
            continue
        for value in _form_values(f, form):
            indexes.append(i)
            values.append(value)
    return indexes, values


def _form_values(f: QueryForms, form: str) -> Iterable[str]:
    if form == "normalized":
        return [f.normalized]
    if form == "core":
        return [f.core] if len(f.core) >= 2 else []
    if form == "latin":
        return [f.latin] if f.latin and not f.is_pinyin else []
    if form == "pinyin":
        return list(f.pinyin)
    return [i for i in f.initials if len(i) >= 3]


def _feature(form: str, kind: str) -> str:
    """Return the reported feature for a match on `form` of a name row of `kind`."""
    if form == "normalized":
        return {"name": "exact_name", "alias": "alias", "former": "former_name", "en": "english"}[kind]
    if form == "latin":
        return "english"
    return {"core": "core_name", "pinyin": "pinyin", "initials": "initials"}[form]


def _score(
    queries: Sequence[ScreenQuery], features: Features, id_hits: set[int], threshold: float
) -> list[list[Candidate]]:
    """Turn matched features into scored candidates, best first, ties by subject id."""
    results = []
    for i in range(len(queries)):
        cands = []
        for subject_id, matched in features.get(i, {}).items():
            # An identifier that matched is exact: other subjects matching only by name drop out.
            if i in id_hits and "identifier" not in matched:
                continue
            points = {_base(f): _points(f) for f in matched}
            score = min(1.0, max(points.values()) + BONUS_PER_EXTRA_FEATURE * (len(points) - 1))
            if score >= threshold:
                ordered = sorted(points, key=lambda f: (-points[f], f))
                cands.append(Candidate(subject_id=subject_id, score=round(score, 4), matched=ordered))
        results.append(sorted(cands, key=lambda c: (-c.score, c.subject_id)))
    return results


def _base(feature: str) -> str:
    return feature.partition(":")[0]


def _points(feature: str) -> float:
    """Return a feature's score; a fuzzy feature carries its coverage bonus after a colon."""
    name, _, extra = feature.partition(":")
    return SCORES[name] + (float(extra) if extra else 0.0)


def _narrow(
    q: ScreenQuery, cands: list[Candidate], subjects: dict[int, dict[str, Any]], limit: int
) -> list[Candidate]:
    """Keep candidates of the query's subject type and region, at most `limit`."""
    kept = []
    for c in cands:
        s = subjects[c.subject_id]
        if q.subject_type and s["subject_type"] != q.subject_type:
            continue
        if q.region and s["region_code"] and not s["region_code"].startswith(q.region):
            continue
        kept.append(c)
    return kept[:limit]


def _subjects(cursor: Any, subject_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Return what a candidate shows about its subject (persons' ID numbers masked only)."""
    if not subject_ids:
        return {}
    cursor.execute(
        """SELECT id, name, subject_type, region_code,
                  COALESCE(uscc, NULLIF(person_id_masked, ''), NULLIF(org_code, ''), legacy_ids[1], '')
           FROM lists_subject WHERE id = ANY(%s)""",
        [subject_ids],
    )
    return {
        row[0]: {
            "id": row[0],
            "name": row[1],
            "subject_type": row[2],
            "region_code": row[3],
            "identifier": row[4],
        }
        for row in cursor.fetchall()
    }


def _listings(cursor: Any, subject_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Return the in-force listings on public lists of the subjects, by subject."""
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if not subject_ids:
        return found
    # The subjects' rows first (MATERIALIZED), then the small catalogue tables: left to itself,
    # the planner may start from the lists and read all their listings by list index (2.7 s for
    # 20 candidates among a million subjects when the statistics are missing or off).
    cursor.execute(
        """WITH l AS MATERIALIZED (
               SELECT subject_id, id, credit_list_id, reference, status, decided_on, expires_on
               FROM lists_listing WHERE subject_id = ANY(%s) AND status IN ('active', 'disputed'))
           SELECT l.subject_id, l.id, cl.code, cl.kind, a.code, l.reference, l.status,
                  l.decided_on, l.expires_on
           FROM l
           JOIN lists_creditlist cl ON cl.id = l.credit_list_id AND cl.is_public
           JOIN agencies_agency a ON a.id = cl.agency_id
           ORDER BY l.subject_id, cl.code, l.id""",
        [subject_ids],
    )
    for sid, lid, code, kind, agency, ref, status, decided, expires in cursor.fetchall():
        found[sid].append(
            {
                "id": lid,
                "list": code,
                "kind": kind,
                "agency": agency,
                "reference": ref,
                "status": status,
                "decided_on": _iso(decided),
                "expires_on": _iso(expires),
            }
        )
    return found


def _restrictions(cursor: Any, subject_ids: list[int], shown: set[int]) -> dict[int, list[dict[str, Any]]]:
    """Return the measures in force today for the subjects by the listings shown, by subject."""
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if not subject_ids:
        return found
    cursor.execute(
        f"""WITH r AS MATERIALIZED ({in_force_sql(cursor)})
            SELECT r.subject_id, m.code, m.name_zh, m.kind, r.listing_id, r.starts_on, r.ends_on
            FROM r JOIN lists_measure m ON m.id = r.measure_id
            ORDER BY r.subject_id, m.code, r.listing_id""",  # noqa: S608 - fixed SQL
        {"subjects": subject_ids, "on": timezone.localdate()},
    )
    for sid, code, name, kind, listing_id, starts, ends in cursor.fetchall():
        if listing_id not in shown:
            continue  # its list is off the public site
        found[sid].append(
            {
                "measure": code,
                "name": name,
                "kind": kind,
                "listing_id": listing_id,
                "starts_on": _iso(starts),
                "until": _iso(ends),
            }
        )
    return found


def _iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None
