"""Match a file's column headers to a list's fields, saying how sure each match is.

Headers come padded (`地      区`), starred (`*名称`), full-width, with units in brackets
(`罚款金额（万元）`) or the real name in brackets (`行政相对人代码_1(统一社会信用代码)`). A match is
"exact" (the field's name or label), "synonym" (a listed synonym), "fuzzy" (a synonym inside a
longer header, or a near-miss spelling: the UI should ask the uploader to confirm) or
"unmapped". A user-confirmed mapping is applied as overrides.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache

from lists.importers.schema import FieldSpec, ListSchema
from lists.importers.validation import shown

EXACT = "exact"
SYNONYM = "synonym"
FUZZY = "fuzzy"
UNMAPPED = "unmapped"
OVERRIDE = "override"
_LEVELS = {EXACT: 0, SYNONYM: 1, FUZZY: 2}

_INVISIBLE = re.compile(r"[\ufeff\u200b-\u200d\u2060\u00ad]")
_SPACING = re.compile(r"[\s_\-]+")
_BRACKETED = re.compile(r"[(\[【〔][^)\]】〕]*[)\]】〕]")
_BRACKET_CONTENT = re.compile(r"[(\[【〔]([^)\]】〕]+)[)\]】〕]")


@dataclass
class ColumnMapping:
    """Where one source column goes."""

    index: int
    header: str  # as written in the file
    key: str  # the header made unique within the file; the key of RowResult.raw
    field: str | None = None
    confidence: str = UNMAPPED
    note: str = ""


@dataclass
class HeaderMapping:
    """The mapping of a whole header row, with file-level problems in `errors`."""

    columns: list[ColumnMapping]
    errors: list[str] = field(default_factory=list)

    @property
    def uncertain(self) -> list[ColumnMapping]:
        """Return the columns the uploader should confirm (fuzzy matches)."""
        return [c for c in self.columns if c.confidence == FUZZY]

    def fields(self) -> dict[str, list[ColumnMapping]]:
        """Return, per mapped field, the columns that feed it."""
        found: dict[str, list[ColumnMapping]] = {}
        for column in self.columns:
            if column.field:
                found.setdefault(column.field, []).append(column)
        return found

    def as_overrides(self) -> dict[str, str | None]:
        """Return the mapping as overrides, to store once the uploader has confirmed it."""
        return {c.key: c.field for c in self.columns}


@dataclass(frozen=True, order=True)
class _Candidate:
    level: int
    tier: int
    length: int  # negative length of the synonym found, so longer wins
    index: int
    field: str


def normalize_header(text: str) -> str:
    """Return a header folded for matching: NFKC, no spacing, BOM or edge punctuation, lower case."""
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", str(text)))
    return _strip_edges(_SPACING.sub("", text).lower())


def _strip_edges(text: str) -> str:
    start, end = 0, len(text)
    while start < end and _is_decoration(text[start]):
        start += 1
    while end > start and _is_decoration(text[end - 1]) and text[end - 1] not in ")]】〕":
        end -= 1
    return text[start:end]


def _is_decoration(char: str) -> bool:
    return unicodedata.category(char)[0] in "PS" and char not in "([【〔"


def _variants(header: str) -> list[str]:
    """Return the forms of a normalized header to match: whole, without brackets, bracket contents."""
    forms = [header, _strip_edges(_BRACKETED.sub("", header))]
    forms += [_strip_edges(m) for m in _BRACKET_CONTENT.findall(header)]
    return list(dict.fromkeys(f for f in forms if f))


def map_headers(
    headers: list[str], schema: ListSchema, overrides: Mapping[str, str | None] | None = None
) -> HeaderMapping:
    """Return where each header goes, with conflicts and missing required columns as errors."""
    keys = unique_keys(headers)
    columns = [ColumnMapping(i, str(header), keys[i]) for i, header in enumerate(headers)]
    mapping = HeaderMapping(columns)
    forced = _apply_overrides(mapping, schema, overrides or {})
    _assign(mapping, schema, forced)
    _check_required(mapping, schema)
    return mapping


def unique_keys(headers: Iterable[str]) -> list[str]:
    """Return the headers made unique and non-empty, for use as dict keys."""
    seen: dict[str, int] = {}
    keys = []
    for i, header in enumerate(headers):
        key = str(header).strip() or f"column {i + 1}"
        seen[key] = seen.get(key, 0) + 1
        keys.append(key if seen[key] == 1 else f"{key} ({seen[key]})")
    return keys


def _apply_overrides(
    mapping: HeaderMapping, schema: ListSchema, overrides: Mapping[str, str | None]
) -> set[int]:
    """Apply the uploader's choices; return the indexes of the columns they decided."""
    by_header = {normalize_header(k): v for k, v in overrides.items()}
    known = {f.name for f in schema.fields()}
    decided = set()
    for column in mapping.columns:
        for key in (column.key, column.header, normalize_header(column.header)):
            if key in overrides or key in by_header:
                target = overrides.get(key, by_header.get(key)) or None
                if target is not None and target not in known:
                    mapping.errors.append(f"column '{column.header}': unknown field '{target}'")
                    target = None
                column.field, column.confidence = target, OVERRIDE if target else UNMAPPED
                decided.add(column.index)
                break
    return decided


def _assign(mapping: HeaderMapping, schema: ListSchema, forced: set[int]) -> None:
    """Give each free column its best field, best matches first; report real ties as errors."""
    specs = {f.name: f for f in schema.fields()}
    # Columns the uploader decided hold their fields ahead of any match (level -1).
    taken = {c.field: _Candidate(-1, 0, 0, c.index, c.field) for c in mapping.columns if c.field}
    free = [c for c in mapping.columns if c.index not in forced and normalize_header(c.header)]
    candidates = sorted(
        cand for c in free for cand in _candidates(normalize_header(c.header), c.index, specs)
    )
    assigned: set[int] = set()
    for cand in candidates:
        column = mapping.columns[cand.index]
        if cand.index in assigned:
            continue
        if cand.field in taken and not specs[cand.field].multi:
            _note_loser(mapping, column, cand, taken[cand.field])
            continue
        taken[cand.field] = cand
        assigned.add(cand.index)
        column.field, column.confidence, column.note = cand.field, _level_name(cand.level), ""


def _note_loser(mapping: HeaderMapping, column: ColumnMapping, cand: _Candidate, winner: _Candidate) -> None:
    winner_header = mapping.columns[winner.index].header
    if (winner.level, winner.tier) == (cand.level, cand.tier) and cand.level < _LEVELS[FUZZY]:
        first, second = sorted([winner, cand], key=lambda c: c.index)
        names = [shown(mapping.columns[c.index].header) for c in (first, second)]
        mapping.errors.append(f"columns '{names[0]}' and '{names[1]}' both map to {cand.field}; choose one")
    if not column.note:
        column.note = f"also matches {cand.field}, which is taken by '{winner_header}'"


def _level_name(level: int) -> str:
    return next(name for name, value in _LEVELS.items() if value == level)


def _candidates(header: str, index: int, specs: dict[str, FieldSpec]) -> list[_Candidate]:
    """Return every field this header could mean, each with how well it matches."""
    found = []
    forms = _variants(header)
    for spec in specs.values():
        tiers = _normalized(tuple(tuple(tier) for tier in spec.tiers()))
        exact = {normalize_header(s) for s in (spec.name, spec.label) if s}
        best = _best_match(forms, tiers, exact)
        if best is not None:
            level, tier, length = best
            found.append(_Candidate(level, tier, -length, index, spec.name))
    return found


def _best_match(
    forms: list[str], tiers: tuple[tuple[str, ...], ...], exact: set[str]
) -> tuple[int, int, int] | None:
    """Return (level, tier, matched length) of the best way a header matches one field."""
    matches = []
    for tier, synonyms in enumerate(tiers):
        for synonym in synonyms:
            level = _match_level(forms, synonym, exact=synonym in exact)
            if level is not None:
                matches.append((level, tier, len(synonym)))
    return min(matches, key=lambda m: (m[0], m[1], -m[2])) if matches else None


def _match_level(forms: list[str], synonym: str, *, exact: bool) -> int | None:
    if forms[0] == synonym:
        return _LEVELS[EXACT] if exact else _LEVELS[SYNONYM]
    if synonym in forms[1:]:
        return _LEVELS[SYNONYM]
    if len(synonym) >= 2 and any(synonym in form for form in forms):
        return _LEVELS[FUZZY]
    if synonym.isascii() and len(synonym) >= 4 and forms[0].isascii():
        return _LEVELS[FUZZY] if difflib.SequenceMatcher(None, forms[0], synonym).ratio() >= 0.85 else None
    return None


@cache
def _normalized(tiers: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
    """Return synonym tiers normalized like headers (cached: the table is fixed per field)."""
    return tuple(tuple(dict.fromkeys(normalize_header(s) for s in tier)) for tier in tiers)


def _check_required(mapping: HeaderMapping, schema: ListSchema) -> None:
    mapped = mapping.fields()
    if "action" in mapped:
        return  # an incremental file may hold only removals; each row is checked instead
    for name in schema.required:
        if name not in mapped:
            spec = schema.field(name)
            label = f" ({spec.label})" if spec and spec.label else ""
            mapping.errors.append(f"no column for the required field {name}{label}")
