"""Normalise subject names into the columns that name search matches on (no ORM here).

One `SubjectName` row per name variant stores `name_fields()`; a user query goes through
`query_forms()`, which applies the same steps. What each column is for:

* normalized: NFKC, traditional → simplified, lower case, letters and digits only. Exact match,
  and the `strpos` recheck of a fragment query.
* core: normalized without the region prefix (深圳市, 广东), the legal form (股份有限公司, 集团,
  合作社, 分公司 …) and stock-status marks (*ST, the A of 深物业A); for Latin names, the name
  without Co./Ltd./Group. "深圳市物业发展(集团)股份有限公司" and "物业发展" share core 物业发展.
* bigrams: overlapping character bigrams of normalized and of core, for a GIN tsvector
  (`to_tsvector('simple', bigrams)`); every token survives the simple parser unchanged.
* pinyin / initials: lower case, no separators, of the core for a legal name (huashengda) but of
  the whole name when it has no legal form, since short names and people are typed with their
  region (贵州茅台 → gzmt).
* latin: Latin-script words without legal-form words ("Ping An Bank Co., Ltd." → "ping an bank").

Suggested matching (see ../shared/reference/search-baseline.md §6), best tier first:

1. exact: normalized = q.normalized, or core = q.core, or latin = q.latin;
2. fragment: name_bg @@ plainto_tsquery('simple', q.bigrams) AND strpos(normalized, q.normalized) > 0;
   then, when q.core_bigrams is set, the same with q.core_bigrams and strpos(core, q.core) > 0
   (深圳物业发展 finds 深圳市物业发展(集团)股份有限公司 only this way). Rank these below the
   rest or run them only when nothing else matched: a core can be generic (上海机场 → 机场);
3. pinyin LIKE p || '%' for p in q.pinyin, initials LIKE i || '%' for i in q.initials;
4. latin LIKE q.latin || ' %' (first words of an English name).
Refuse `q.is_too_broad` queries (legal-form or region words only) before touching the index.

Typo candidates ("did you mean", not built yet): a one-character typo in a name of n ≥ 4
characters spoils at most 2 of its n - 1 bigrams, so the intended name still holds at least
n - 3 of the query's bigrams. Search with OR instead of AND,
`name_bg @@ to_tsquery('simple', 'b1 | b2 | …')`, over q.core_bigrams (or q.bigrams when that is
empty) so that the 有限公司 bigrams every company shares do not count. Rank the rows by how many
query bigrams they hold (`ts_rank(name_bg, query, 0)` grows with it; or count them in Python over
the top few hundred rows), keep those holding at least (n - 3) / (n - 1) of them, and break ties
by the difference in length from the query. Leave out query bigrams that are very common
(pg_stats most_common_elems share above ~1 %, e.g. 科技, 公司): an OR over them reads most of the
index.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from operator import add

from lists.search import hanzi
from lists.search.hanzi import syllables, to_simplified
from lists.search.regions import region_names
from lists.search.words import (
    BRANCH_WORDS,
    INDUSTRY_WORDS,
    LATIN_FORM_WORDS,
    LATIN_TRAILING_FORM_WORDS,
    LEGAL_WORDS,
    LEGAL_WORDS_INSIDE,
    ZONE_OR_TOWN,
)

NAME = "name"
ALIAS = "alias"
FORMER = "former"
EN = "en"
KINDS = (NAME, ALIAS, FORMER, EN)

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_NOT_ALNUM = re.compile(r"[\W_]+")  # \w is every script's letters and digits, plus "_".
_HAS_CJK = re.compile(f"[{_CJK}]")
_BRACKETED = re.compile(r"[(\[【〔〖]([^()\[\]【】〔〕〖〗]*)[)\]】〕〗]")
_STOCK_MARK = re.compile(f"^s?st(?=[{_CJK}])")  # *ST, S*ST, ST after punctuation removal
_SHARE_CLASS = re.compile(f"(?<=[{_CJK}])[ab]$")  # 深物业A, 深中华B
_INNER_LEGAL = re.compile("|".join(LEGAL_WORDS_INSIDE))
_ZONE_OR_TOWN = re.compile(f"^[{_CJK}]{{2,4}}?(?:{'|'.join(ZONE_OR_TOWN)})")
_ACRONYM = re.compile(r"\b(?:[a-z]\.){2,}")  # s.p.a., u.s.
_APOSTROPHE = re.compile(r"(?<=\w)['’](?=\w)")  # people's → peoples
_LATIN_WORD = re.compile(r"[^\W_]+")
_PINYIN_QUERY = re.compile(r"^[a-z]+(?:[ '][a-z]+)*$")
_MIN_CORE = 2


def normalize_name(text: str) -> str:
    """Return the name in NFKC, simplified and lower case, with only letters and digits left."""
    return _NOT_ALNUM.sub("", _prepare(text))


def core_name(text: str) -> str:
    """Return the normalised name without region prefix, legal form or stock marks; never empty."""
    return _analyse(text).core


def cjk_bigrams(text: str) -> str:
    """Return the space-separated overlapping character bigrams of `text` (already normalised).

    平安银行 → "平安 安银 银行"; one character gives itself. ASCII is paired per character as
    well (tcl科技 → "tc cl l科 科技"), so a Latin fragment matches like a Chinese one.
    """
    if len(text) < 2:
        return text
    return " ".join(map(add, text[:-1], text[1:]))


def latin_name(text: str) -> str:
    """Return the Latin-script words of a name, lower case, without legal-form words."""
    words = _latin_words(unicodedata.normalize("NFKC", text).lower())
    kept = [w for w in words if w not in LATIN_FORM_WORDS]
    while kept and kept[-1] in LATIN_TRAILING_FORM_WORDS:
        kept.pop()
    return " ".join(kept or words)


def name_fields(text: str, *, kind: str) -> dict[str, str]:
    """Return the derived search columns for one name variant.

    kind is one of "name" (full legal name), "alias" (short name / other alias), "former", "en".
    Returns keys: normalized, core, bigrams, pinyin, initials, latin
    """
    if kind not in KINDS:
        raise ValueError(f"unknown name kind {kind!r}")
    name = _analyse(text, kind=kind)
    bigrams = cjk_bigrams(name.normalized)
    if name.core not in name.normalized:  # e.g. a branch: 中国建设银行[股份有限公司]佳木斯 adds 行佳
        have = set(bigrams.split())
        extra = [b for b in dict.fromkeys(cjk_bigrams(name.core).split()) if b not in have]
        bigrams = " ".join([bigrams, *extra])
    spoken = [s for s in syllables(name.spoken) if s.isascii()]
    return {
        "normalized": name.normalized,
        "core": name.core,
        "bigrams": bigrams,
        "pinyin": "".join(spoken),
        "initials": "".join(s[0] for s in spoken),
        "latin": name.latin,
    }


@dataclass(frozen=True, slots=True)
class _Name:
    normalized: str
    core: str
    spoken: str  # what pinyin is made of
    latin: str


@dataclass(frozen=True, slots=True)
class QueryForms:
    """A search query in every form that the stored name columns can be compared with."""

    normalized: str
    core: str
    bigrams: str  # of normalized; AND-ed, a fragment matches
    core_bigrams: str  # of core, for strpos(core, q.core); "" when core adds nothing or is too broad
    latin: str
    is_pinyin: bool
    pinyin: tuple[str, ...]  # the letters if they split into syllables, also without region/legal form
    initials: tuple[str, ...]  # the letters if they can be initials (no i, u, v)
    is_too_broad: bool


def query_forms(q: str) -> QueryForms:
    """Return the forms of a user query, normalised the same way as the stored names."""
    name = _analyse(q, kind=ALIAS)
    letters = unicodedata.normalize("NFKC", q).strip().lower()
    is_pinyin = bool(_PINYIN_QUERY.match(letters))
    pinyin: tuple[str, ...] = ()
    initials: tuple[str, ...] = ()
    if is_pinyin:
        parts = re.split(r"[ ']", letters)
        pinyin = _pinyin_candidates("".join(parts))
        joined_initials = "".join(p[0] for p in parts) if len(parts) > 1 else parts[0]
        initials = () if set(joined_initials) & {"i", "u", "v"} else (joined_initials,)
    return QueryForms(
        normalized=name.normalized,
        core=name.core,
        bigrams=cjk_bigrams(name.normalized),
        core_bigrams=_core_bigrams(name),
        latin=name.latin,
        is_pinyin=is_pinyin,
        pinyin=pinyin,
        initials=initials,
        is_too_broad=_is_too_broad(name.normalized, name.latin),
    )


def _pinyin_candidates(letters: str) -> tuple[str, ...]:
    """Return the pinyin strings to look up for letters typed as pinyin, core form included."""
    places, forms = _pinyin_of_stop_words()
    return hanzi.pinyin_candidates(letters, prefixes=places, suffixes=forms)


@cache
def _pinyin_of_stop_words() -> tuple[frozenset[str], frozenset[str]]:
    """Return the pinyin of region names and of legal-form words."""
    return _spell(region_names()), _spell(LEGAL_WORDS | BRANCH_WORDS)


def _spell(words: frozenset[str]) -> frozenset[str]:
    """Return the pinyin of each word, without separators."""
    return frozenset("".join(syllables(word)) for word in words)


def _core_bigrams(name: _Name) -> str:
    """Return the bigrams of a query's core, or "" when they add nothing or match too much (银行)."""
    if name.core == name.normalized or _is_too_broad(name.core, name.latin):
        return ""
    return cjk_bigrams(name.core)


def is_too_broad(q: str) -> bool:
    """Return whether a query is only legal-form, region or lone industry words (有限公司, 北京市)."""
    name = _analyse(q, kind=ALIAS)
    return _is_too_broad(name.normalized, name.latin)


def _prepare(text: str) -> str:
    """Return `text` in NFKC (full-width → half-width), simplified Chinese and lower case."""
    if not text.isascii():
        text = to_simplified(unicodedata.normalize("NFKC", text))
    return text.lower()


def _analyse(text: str, *, kind: str = NAME) -> _Name:
    """Return the normalized, core, pinyin source and Latin forms of one name."""
    prepared = _prepare(text)
    normalized = _NOT_ALNUM.sub("", prepared)
    if kind == EN or not _HAS_CJK.search(normalized):
        words = latin_name(prepared)
        core = words.replace(" ", "")
        return _Name(normalized, core if len(core) >= _MIN_CORE else normalized, "", words)
    marked = _NOT_ALNUM.sub("", _BRACKETED.sub(_drop_region_or_form, prepared))
    unmarked = _SHARE_CLASS.sub("", _STOCK_MARK.sub("", marked))
    without_form = _strip_legal_form(_INNER_LEGAL.sub("", unmarked) or unmarked)
    core = _strip_region(without_form)
    if len(core) < _MIN_CORE:
        core = normalized
    # Short names are typed whole, as stock apps do (贵州茅台 → gzmt, 万泽股份 → wzgf); legal
    # names by their core (深圳市华盛达科技有限公司 → huashengdakeji).
    is_short_name = kind != NAME and not _INNER_LEGAL.search(unmarked)
    spoken = unmarked if is_short_name and len(unmarked) >= _MIN_CORE else core
    return _Name(normalized, core, spoken, _latin_in_chinese(core))


def _drop_region_or_form(match: re.Match[str]) -> str:
    """Return "" for a bracketed region or legal form (彪凤五金(天津), (集团), (普通合伙), (中国))."""
    inside = _NOT_ALNUM.sub("", match.group(1))
    if inside in region_names() or inside in LEGAL_WORDS or inside in BRANCH_WORDS or inside == "中国":
        return ""
    return match.group(0)


def _strip_legal_form(name: str) -> str:
    """Return `name` without trailing legal-form and branch words (…集团股份有限公司, …分行)."""
    suffixes = _suffixes_by_length()
    stripped = True
    while stripped:
        stripped = False
        for length in suffixes:
            if len(name) - length >= _MIN_CORE and name[-length:] in suffixes[length]:
                name = name[:-length]
                stripped = True
                break
    return name


def _strip_region(name: str) -> str:
    """Return `name` without leading division names (广东省深圳市南山区…, 宁波梅山保税港区…)."""
    regions, lengths_by_start = region_names(), _region_lengths()
    after_region = False
    for _ in range(4):
        for length in lengths_by_start.get(name[:2], ()):
            if len(name) - length >= _MIN_CORE and name[:length] in regions:
                name, after_region = name[length:], True
                break
        else:
            zone = _ZONE_OR_TOWN.match(name) if after_region else None
            if zone is None or len(name) - zone.end() < _MIN_CORE:
                return name
            name = name[zone.end() :]
    return name


@cache
def _suffixes_by_length() -> dict[int, frozenset[str]]:
    """Return legal-form and branch words grouped by length, longest first."""
    words = LEGAL_WORDS | BRANCH_WORDS
    return {
        n: frozenset(w for w in words if len(w) == n) for n in sorted({len(w) for w in words}, reverse=True)
    }


@cache
def _region_lengths() -> dict[str, tuple[int, ...]]:
    """Return the lengths of region names by their first two characters, longest first."""
    lengths: dict[str, set[int]] = {}
    for region in region_names():
        lengths.setdefault(region[:2], set()).add(len(region))
    return {start: tuple(sorted(ns, reverse=True)) for start, ns in lengths.items()}


def _latin_words(text: str) -> list[str]:
    """Return the words of lower-case text, with dotted acronyms joined (s.p.a. → spa)."""
    text = _ACRONYM.sub(lambda m: m.group(0).replace(".", ""), text)
    return _LATIN_WORD.findall(_HAS_CJK.sub(" ", _APOSTROPHE.sub("", text)))


def _latin_in_chinese(core: str) -> str:
    """Return the Latin words of a Chinese name's core (tcl科技 → "tcl"), or ""."""
    return " ".join(w for w in _latin_words(core) if len(w) > 1 and not w.isdigit())


@cache
def _stop_pieces() -> tuple[frozenset[str], frozenset[str]]:
    """Return (region names, legal-form words and their fragments) for `is_too_broad`."""
    forms = LEGAL_WORDS | BRANCH_WORDS
    # Whole words, and pieces of two or more characters: a lone 中 or 业 is no legal form.
    fragments = {w[i:j] for w in forms for i in range(len(w)) for j in range(i + 2, len(w) + 1)} | forms
    # 中国 is no division but, alone, as broad as one (中国银行 still passes).
    return region_names() | {"中国", "中华", "全国"}, frozenset(fragments)


def _is_too_broad(normalized: str, latin: str) -> bool:
    """Return whether a normalised query names nothing but a region, an industry or a legal form."""
    if len(normalized) < 2:
        return True
    if not _HAS_CJK.search(normalized):
        return not latin or all(w in LATIN_FORM_WORDS for w in latin.split())
    regions, forms = _stop_pieces()
    rest = normalized
    for _ in range(4):  # 广东省深圳市南山区
        length = next((n for n in (*_region_lengths().get(rest[:2], ()), 2) if rest[:n] in regions), 0)
        rest = rest[length:]
    if rest == normalized:  # a lone industry word, not 北京银行
        length = next((n for n in range(min(len(rest), 5), 1, -1) if rest[:n] in INDUSTRY_WORDS), 0)
        rest = rest[length:]
    return _is_legal_chain(rest, forms)


def _is_legal_chain(text: str, pieces: frozenset[str]) -> bool:
    """Return whether `text` is a run of legal-form words or pieces of them (限公, 责任公)."""
    reachable = [True] + [False] * len(text)
    for end in range(1, len(text) + 1):
        reachable[end] = any(
            reachable[start] and text[start:end] in pieces for start in range(max(0, end - 10), end)
        )
    return reachable[-1]
