"""Search subjects by identifier or name, with filters and capped facets over their listings.

Statements per search, whatever the result size (asserted in tests/lists/test_search_query.py):

* identifier-shaped query (USCC, organisation code, 15-digit number, ID number as its keyed
  hash): one unique-index lookup; a hit ends the search;
* name query: one statement string that sets the statement timeout for itself and returns the
  ranked subjects (a UNION ALL of match tiers over `lists_subjectname`, each with its own LIMIT)
  together with the facet counts; one more for the subjects of the page; one more (typo
  candidates plus facets) only when nothing matched; and every bigrams.STATS_TTL_SECONDS one read of
  the planner statistics of the bigram column.

Counts and facets cover at most CAP matching subjects, because exact counts of common fragments
cost about a second (../shared/reference/search-baseline.md §4.5). Queries made only of common
words (有限公司, 北京市; and 地产开, 农业发展 by the statistics) are answered with exact names
only, or flagged too broad. No PostgreSQL extension is needed.

Tiers, best first (ties: shorter matched name, then subject id):
identifier 1000; exact full name 900; exact alias / former / English name 800; the name without
region and legal form 700; full pinyin 650; name prefix, English prefix 600; fragment 500;
pinyin or initials prefix 450-550; fragment of the core 400; one-character typo 300-400.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.db import OperationalError, connection, transaction

from lists.identifiers import PERSON_ID, classify_identifier, compact_identifier, person_id_hash
from lists.models import Subject
from lists.models.subjects import legacy_id_condition
from lists.search.bigrams import bigram_weights, gin_tsquery, is_common, quote_token
from lists.search.facets import (
    STATUSES,
    Facets,
    SearchFilters,
    facet_label,
    facets_sql,
    filter_sql,
    no_facets,
)
from lists.search.text import QueryForms, cjk_bigrams, query_forms

CAP = 300  # matching subjects ranked, counted and faceted at most (shown as "more than 300")
STATEMENT_TIMEOUT_MS = 2000
SCAN_LIMIT = 10 * CAP  # name rows a tier reads at most before the filters
MAX_QUERY_CHARS = 100
MAX_PER_PAGE = 100
TYPO_MIN_CHARS = 4
TYPO_RARE_WEIGHT = 0.2  # typo candidates come from bigrams in under 0.1 % of the name rows
MIN_INITIALS_PREFIX = 3
FEATURES = ("identifier", "exact_name", "alias", "former", "english", "pinyin", "fragment", "fuzzy")

_IDENTIFIER_SHAPE = re.compile(r"^[0-9A-Z]{9}$|^[0-9A-Z]{15}$|^[0-9A-Z]{18}$")
_HAS_CJK = re.compile("[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_KIND_FEATURE = {"name": "fragment", "alias": "alias", "former": "former", "en": "english"}
_EXACT_FEATURE = {"name": "exact_name", "alias": "alias", "former": "former", "en": "english"}


@dataclass
class SearchHit:
    subject: Subject
    score: float
    matched: list[str]  # FEATURES that matched, best first


@dataclass
class SearchResult:
    hits: list[SearchHit]
    total: int
    total_is_capped: bool
    identifier_match: Subject | None
    facets: dict[str, list[tuple[str, str, int]]]  # facet -> [(value, label, count)]
    too_broad: bool = False  # only legal-form or region words: ask for more characters
    timed_out: bool = False  # hit the statement timeout: ask for a narrower query


@dataclass
class _Match:
    subject_id: int
    score: float
    matched: list[str]
    length: int
    tier: float


def search_subjects(
    q: str, *, filters: SearchFilters | None = None, page: int = 1, per_page: int = 20
) -> SearchResult:
    """Return the page of subjects matching an identifier or name query, best first."""
    filters = filters or SearchFilters()
    if filters.status not in STATUSES:
        raise ValueError(f"unknown status filter {filters.status!r}")
    per_page = min(max(per_page, 1), MAX_PER_PAGE)
    page = max(page, 1)
    text = (q or "").strip()[:MAX_QUERY_CHARS]
    if not text:
        return _empty()
    lookup = _identifier_lookup(text)
    if lookup is not None:
        # One unique-index lookup: no transaction or timeout needed. Filters do not apply: an
        # identifier names one subject, and the page goes straight to it.
        found = _subjects(*lookup, limit=1)
        if found:
            subject = found[0]
            hit = SearchHit(subject=subject, score=1000.0, matched=["identifier"])
            return SearchResult(
                hits=[hit] if page == 1 else [],
                total=1,
                total_is_capped=False,
                identifier_match=subject,
                facets=no_facets(),
            )
        if _is_person_id(text):
            return _empty()  # never search names with an ID number
    forms = query_forms(text)
    if forms.is_too_broad:
        return _empty(too_broad=True)
    try:
        with _savepoint_if_in_transaction(), connection.cursor() as cursor:
            return _search(cursor, forms, filters, page, per_page)
    except OperationalError as exc:
        if type(exc.__cause__).__name__ == "QueryCanceled":
            return _empty(timed_out=True)
        raise


@contextmanager
def _savepoint_if_in_transaction() -> Iterator[None]:
    """Protect a caller's transaction from a statement timeout; in autocommit, add nothing.

    Each search statement string starts with set_config(…, true): in autocommit the string is
    one implicit transaction, so the timeout covers the search and ends with it.
    """
    if connection.in_atomic_block:
        with transaction.atomic():
            yield
    else:
        yield


def _empty(**flags: bool) -> SearchResult:
    return SearchResult(
        hits=[], total=0, total_is_capped=False, identifier_match=None, facets=no_facets(), **flags
    )


def _search(cursor, forms: QueryForms, filters: SearchFilters, page: int, per_page: int) -> SearchResult:  # type: ignore[no-untyped-def]
    matches, facets = _name_matches(cursor, forms, filters)
    has_cjk = _HAS_CJK.search(forms.normalized)
    if not matches and has_cjk and is_common(forms.bigrams, bigram_weights(cursor)):
        return _empty(too_broad=True)
    if not matches and has_cjk and len(forms.normalized) >= TYPO_MIN_CHARS:
        matches, facets = _typo_matches(cursor, forms, filters)
    window = matches[(page - 1) * per_page : page * per_page]
    page_ids = [m.subject_id for m in window]
    subjects = {s.pk: s for s in _subjects("id = ANY(%s)", [page_ids], len(page_ids))} if window else {}
    hits = [SearchHit(subjects[m.subject_id], m.score, m.matched) for m in window if m.subject_id in subjects]
    return SearchResult(
        hits=hits,
        total=len(matches),
        total_is_capped=len(matches) >= CAP,
        identifier_match=None,
        facets=facets,
    )


# --- identifiers -----------------------------------------------------------------------------


def _identifier_lookup(text: str) -> tuple[str, list[Any]] | None:
    """Return the lists_subject condition for an identifier-shaped query, or None for a name."""
    value = compact_identifier(text)
    if not _IDENTIFIER_SHAPE.match(value) or not any(c.isdigit() for c in value):
        return None
    kind = classify_identifier(value).kind
    legacy = legacy_id_condition("legacy_ids", "%s")
    if kind == PERSON_ID:
        # Only the keyed hash goes to the database; a 15-digit number may also be a legacy one.
        hashed = person_id_hash(value)
        if len(value) == 15:
            return f"(person_id_hash = %s OR {legacy})", [hashed, value]
        return "person_id_hash = %s", [hashed]
    if len(value) == 18:
        return "uscc = %s", [value]
    if len(value) == 15:
        return legacy, [value]
    return "org_code = %s", [value]


def _subjects(condition: str, params: list[Any], limit: int) -> list[Subject]:
    """Return Subject instances by a condition on lists_subject, without the ORM's query building.

    Search is the portal's hottest path; building the query through the ORM costs about a
    millisecond more than the indexed lookup itself.
    """
    columns = _subject_columns()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(columns)} FROM lists_subject WHERE {condition} ORDER BY id LIMIT {int(limit)}",  # noqa: S608
            params,
        )
        rows = cursor.fetchall()
    return [Subject.from_db(connection.alias, columns, row) for row in rows]


@cache
def _subject_columns() -> list[str]:
    return [f.attname for f in Subject._meta.concrete_fields]


def _is_person_id(text: str) -> bool:
    value = compact_identifier(text)
    return bool(_IDENTIFIER_SHAPE.match(value)) and classify_identifier(value).kind == PERSON_ID


# --- names -----------------------------------------------------------------------------------


def _name_matches(cursor, forms: QueryForms, filters: SearchFilters) -> tuple[list[_Match], Facets]:  # type: ignore[no-untyped-def]
    """Return up to CAP matching subjects, best first, from one UNION ALL over the match tiers."""
    where, where_params = filter_sql(filters, "sn.subject_id")
    branches: list[tuple[str, list[Any]]] = []

    def add(score_sql: str, feature_sql: str, condition: str, params: list[Any]) -> None:
        # The filters are checked on at most SCAN_LIMIT name rows per tier, so that a short query
        # with a filter few of its matches pass (wang, customs redlist) cannot read them all.
        branches.append(
            (
                f"(SELECT sn.subject_id, {score_sql} AS tier, {feature_sql} AS feature, "  # noqa: S608
                f"length(sn.normalized) AS len FROM (SELECT {_NAME_COLUMNS} FROM lists_subjectname sn "
                f"WHERE {condition} LIMIT {SCAN_LIMIT}) sn WHERE TRUE{where} LIMIT {CAP})",
                params + where_params,
            )
        )

    exact_feature = _case_kind(_EXACT_FEATURE)
    kind_feature = _case_kind(_KIND_FEATURE)
    add(
        "CASE sn.kind WHEN 'name' THEN 900 ELSE 800 END",
        exact_feature,
        "sn.normalized = %s",
        [forms.normalized],
    )
    if forms.core and forms.core != forms.normalized:
        add("700", kind_feature, "sn.core = %s", [forms.core])
    elif forms.core:
        add("700", kind_feature, "sn.core = %s AND sn.kind = 'name'", [forms.core])
    if forms.latin:
        add("800", "'english'", "sn.latin = %s AND sn.kind = 'en'", [forms.latin])
        add(
            "CASE WHEN sn.latin LIKE %s THEN 600 ELSE 500 END",
            "'english'",
            f"{_LATIN_VECTOR} @@ to_tsquery('simple', %s)",
            [_like_prefix(forms.latin), _words_tsquery(forms.latin)],
        )
    # Latin letters pair up with almost every name (ba, an, ng): a Latin query goes by its words
    # (English names, the Latin brand of a Chinese name) and by pinyin instead.
    weights = bigram_weights(cursor)
    fragment = gin_tsquery(forms.bigrams, weights) if _HAS_CJK.search(forms.normalized) else ""
    if fragment and is_common(forms.bigrams, weights):
        fragment = ""  # 地产开, 农业发展: exact names only, or "too broad"
    if fragment:
        add(
            "CASE WHEN strpos(sn.normalized, %s) = 1 THEN 600 ELSE 500 END",
            kind_feature,
            "sn.search_vector @@ to_tsquery('simple', %s) AND strpos(sn.normalized, %s) > 0",
            [forms.normalized, fragment, forms.normalized],
        )
    core_fragment = gin_tsquery(forms.core_bigrams, weights) if fragment else ""
    if core_fragment:
        add(
            "400",
            kind_feature,
            "sn.search_vector @@ to_tsquery('simple', %s) AND strpos(sn.core, %s) > 0",
            [core_fragment, forms.core],
        )
    for rank, spelled in enumerate(forms.pinyin):
        # The first spelling is the whole query; later ones lack its region or legal form.
        exact, prefix = (650, 550) if rank == 0 else (560, 520)
        if len(spelled) < MIN_INITIALS_PREFIX:  # "hu" would start every twentieth name
            add(str(exact), "'pinyin'", "sn.pinyin = %s", [spelled])
            continue
        add(
            f"CASE WHEN sn.pinyin = %s THEN {exact} ELSE {prefix} END",
            "'pinyin'",
            "sn.pinyin LIKE %s",
            [spelled, _like_prefix(spelled)],
        )
    for initials in forms.initials:
        if len(initials) < MIN_INITIALS_PREFIX:  # "bh" would start every tenth name
            add("550", "'pinyin'", "sn.initials = %s", [initials])
            continue
        add(
            "CASE WHEN sn.initials = %s THEN 550 ELSE 450 END",
            "'pinyin'",
            "sn.initials LIKE %s",
            [initials, _like_prefix(initials)],
        )
    return _run_ranked(cursor, branches, filters)


def _typo_matches(cursor, forms: QueryForms, filters: SearchFilters) -> tuple[list[_Match], Facets]:  # type: ignore[no-untyped-def]
    """Return subjects whose name is one character away from the query (substitution, insertion, deletion).

    A typo at character i spoils at most the two query bigrams around it, so the intended name
    holds every other one. Candidates come from the rare query bigrams only (有限, 公司 or 科技
    would read half the index): with three or more, an OR over the typo positions of the AND of
    the rare bigrams each position leaves intact; with one or two, any of them. Candidates must
    hold all query bigrams but two, and rank by how many they hold, then by length difference.
    """
    # The whole query, not its core: the bigram joining region and trade name (州振 in 杭州振华)
    # is often the rarest one left when a short trade name has a typo.
    source = forms.normalized
    bigrams = cjk_bigrams(source).split()
    unique = list(dict.fromkeys(bigrams))
    if len(bigrams) < 3:
        return [], no_facets()
    weights = bigram_weights(cursor)
    rare = [j for j, b in enumerate(bigrams) if weights.get(b, 0) < TYPO_RARE_WEIGHT]
    if not rare:
        return [], no_facets()  # only common words left (房地产开发有限公司): any guess would be arbitrary
    if len(rare) >= 3:
        alternatives = {
            tuple(sorted({bigrams[j] for j in rare if j not in (i - 1, i)})) for i in range(len(bigrams) + 1)
        }
    else:  # the typo may have spoiled all but one of them
        alternatives = {(bigrams[j],) for j in rare}
    tsquery = " | ".join("(" + " & ".join(map(quote_token, alt)) + ")" for alt in sorted(alternatives) if alt)
    held = " + ".join(["(sn.search_vector @@ to_tsquery('simple', %s))::int"] * len(unique))
    where, where_params = filter_sql(filters, "sn.subject_id")
    need = len(unique) - 2
    sql = f"""
        SELECT c.subject_id, 300 + 100.0 * c.held / %s AS tier, 'fuzzy' AS feature,
               abs(c.len - %s) AS len
        FROM (SELECT sn.subject_id, length(sn.normalized) AS len, {held} AS held
              FROM lists_subjectname sn
              WHERE sn.search_vector @@ to_tsquery('simple', %s) AND {held} >= %s{where}
              LIMIT {CAP}) c
    """  # noqa: S608 - only placeholders and fixed SQL are interpolated
    tokens = [quote_token(b) for b in unique]
    params = [len(unique), len(source), *tokens, tsquery, *tokens, need, *where_params]
    return _run_ranked(cursor, [(f"({sql})", params)], filters)


def _run_ranked(
    cursor, branches: list[tuple[str, list[Any]]], filters: SearchFilters
) -> tuple[list[_Match], Facets]:  # type: ignore[no-untyped-def]
    """Rank the union of branches (each subject at its best tier) and facet the first CAP subjects.

    One statement string, one round trip: the session settings for this search, then the ranked
    subjects and the facet counts as rows of one result.
    """
    union = " UNION ALL ".join(sql for sql, _ in branches)
    params: list[Any] = [str(int(STATEMENT_TIMEOUT_MS))]
    params += [p for _, branch_params in branches for p in branch_params]
    facet_sql, facet_params = facets_sql(filters)
    cursor.execute(
        f"""
        SELECT set_config('statement_timeout', %s, true), set_config('jit', 'off', true);
        WITH r AS (
            SELECT m.subject_id, max(m.tier) AS tier,
                   (array_agg(m.len ORDER BY m.tier DESC, m.len))[1] AS len,
                   array_agg(m.feature ORDER BY m.tier DESC, m.len) AS features
            FROM ({union}) m
            GROUP BY m.subject_id
            ORDER BY 2 DESC, 3, 1
            LIMIT {CAP}
        ), {facet_sql}
        """,  # noqa: S608 - the branches are fixed SQL with placeholders
        params + facet_params,
    )
    cursor.nextset()
    matches, facets = [], no_facets()
    for facet, subject_id, tier, length, features, value, label, count in cursor.fetchall():
        if facet == "hit":
            score = float(tier) + 1.0 / (2 + float(length))
            matches.append(_Match(subject_id, score, list(dict.fromkeys(features)), int(length), float(tier)))
        else:
            facets[facet].append((value, label or facet_label(facet, value), count))
    matches.sort(key=lambda m: (-m.tier, m.length, m.subject_id))
    for values in facets.values():
        values.sort(key=lambda v: (-v[2], v[0]))
    return matches, facets


_NAME_COLUMNS = "sn.subject_id, sn.kind, sn.normalized, sn.core, sn.latin, sn.pinyin, sn.initials"
# Exactly the expression of the subjectname_latin_words index, or the planner cannot use it.
_LATIN_VECTOR = "to_tsvector('simple'::regconfig, (COALESCE(sn.latin, ''::character varying))::text)"


def _case_kind(features: dict[str, str]) -> str:
    whens = " ".join(f"WHEN '{kind}' THEN '{feature}'" for kind, feature in features.items())
    return f"CASE sn.kind {whens} END"


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _words_tsquery(latin: str) -> str:
    """Return "'ping' & 'an' & 'ba':*": every word, the last one possibly unfinished."""
    words = [quote_token(w) for w in latin.split()]
    words[-1] += ":*"
    return " & ".join(words)
