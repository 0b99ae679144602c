"""How common name bigrams are (planner statistics and word lists), and tsqueries over the rare ones."""

from __future__ import annotations

import time
from functools import cache

from lists.search.regions import region_names
from lists.search.text import cjk_bigrams
from lists.search.words import BRANCH_WORDS, INDUSTRY_WORDS, LEGAL_WORDS

MAX_GIN_BIGRAMS = 4  # strpos rechecks the rest; more posting lists only cost time
COMMON_SHARE = 0.005  # a bigram in more name rows than this is common (pg_stats)
COMMON_ROWS = 5000  # … and in at least this many
STATS_TTL_SECONDS = 600


def quote_token(token: str) -> str:
    """Return a tsquery operand for one token, quoted so that no operator character survives."""
    return "'" + token.replace("\\", "\\\\").replace("'", "''") + "'"


def is_common(bigrams: str, weights: dict[str, float]) -> bool:
    """Return whether every bigram of a query is common, so that it matches a large share of names."""
    return all(weights.get(b, 0) >= 1 for b in bigrams.split())


def gin_tsquery(bigrams: str, weights: dict[str, float]) -> str:
    """Return an AND tsquery over the rarest few query bigrams (strpos rechecks the whole query)."""
    unique = list(dict.fromkeys(bigrams.split()))
    if not unique:
        return ""
    ranked = sorted(unique, key=lambda b: weights.get(b, 0))  # stable: keeps query order on ties
    rare = [b for b in ranked if weights.get(b, 0) < 1]
    # A common bigram's posting list (贸易: one name in ten) costs more than rechecking the rows
    # that the rare ones find.
    return " & ".join(quote_token(b) for b in (rare or ranked[:2])[:MAX_GIN_BIGRAMS])


_stats: tuple[float, dict[str, float]] = (0.0, {})


def bigram_weights(cursor) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Return how common bigrams are; 1 or more is common.

    Legal forms, places and industry words are always common; so is any bigram in more than
    COMMON_SHARE and COMMON_ROWS of the name rows by the planner statistics (refreshed every STATS_TTL_SECONDS).
    """
    global _stats
    expires, weights = _stats
    if time.monotonic() < expires:
        return weights
    cursor.execute(
        """
        SELECT s.most_common_elems::text::text[], s.most_common_elem_freqs, c.reltuples
        FROM pg_stats s JOIN pg_class c ON c.oid = 'lists_subjectname'::regclass
        WHERE s.schemaname = current_schema() AND s.tablename = 'lists_subjectname'
          AND s.attname = 'search_vector'
        """
    )
    bigrams, shares, rows = cursor.fetchone() or ([], [], 0)
    weights = dict(_static_weights())
    # In a small table every bigram has a large share; only many rows make one costly.
    scale = 1 / max(COMMON_SHARE, COMMON_ROWS / max(rows, 1))
    for bigram, share in zip(bigrams or [], shares or [], strict=False):
        weights[bigram] = max(weights.get(bigram, 0), share * scale)
    _stats = (time.monotonic() + STATS_TTL_SECONDS, weights)
    return weights


@cache
def _static_weights() -> dict[str, float]:
    """Return bigrams that occur in most names (legal forms 2, places and industries 1)."""
    places = (name for name in region_names() if len(name) <= 4)
    common = {b: 1.0 for word in (*INDUSTRY_WORDS, *places) for b in cjk_bigrams(word).split()}
    common.update({b: 2.0 for word in LEGAL_WORDS | BRANCH_WORDS for b in cjk_bigrams(word).split()})
    return common
