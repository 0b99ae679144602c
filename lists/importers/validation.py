"""Clean and check one row's values; the same rules for every file format.

Messages are short, name the field first ("decided_on: not a date: '2023-13-45'") and never
quote a full personal ID number.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection, Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from lists.identifiers import (
    PERSON_ID,
    USCC,
    Identifier,
    classify_identifier,
    is_minor,
    mask_person_id,
)
from lists.importers.base import Limits, RowResult
from lists.importers.regions import check_region_code, region_from_name
from lists.importers.schema import (
    ACTION,
    ACTIONS,
    CHOICE,
    DATE,
    DECIMAL,
    IDENTIFIER,
    INTEGER,
    LIST,
    REGION,
    SUBJECT_TYPE,
    SUBJECT_TYPE_WORDS,
    YEAR,
    FieldSpec,
    ListSchema,
)

_EXCEL_EPOCH = date(1899, 12, 30)
_DATE_PATTERNS = (
    re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"),
    re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日?$"),
    re.compile(r"^(\d{4})(\d{2})(\d{2})$"),
)
_CHINESE_DIGITS = {c: str(i) for i, c in enumerate("〇一二三四五六七八九")} | {"零": "0", "○": "0", "O": "0"}
# "=" starts a formula in every spreadsheet; after + - @ only a function call (SUM(), a DDE
# command (cmd|) or a sheet reference (Sheet1!A1) does, so "-", "-5" and "+86 ..." pass.
_FORMULA = re.compile(r"^(?:=.|[+\-@].*?(?:[A-Za-z_][\w.]*\s*\(|\w\s*\||![$A-Za-z]))", re.DOTALL)
_FORMULA_STARTS = frozenset("=+-@")  # every match of _FORMULA starts with one of these
_LONG_NUMBER = re.compile(r"\d{12,}[Xx]?")  # anything that could be a personal ID number
_LIST_SEPARATORS = re.compile(r"[;；|\n]+")
_SERIAL = re.compile(r"\d{5}(?:\.\d+)?")
_DIGITS = re.compile(r"\d+")
_PEOPLE = {"natural_person", "legal_person_officers"}
_USCC_TYPES = {
    "92": "individual_business",
    "93": "farmer_cooperative",
    "91": "legal_person",
    "12": "public_institution",
}


class _Dropped(ValueError):
    """A value we cannot use but that does not make the row wrong: warn and leave it out."""


def shown(value: object, width: int = 40) -> str:
    """Return a value fit to quote in a message: short, personal ID numbers masked."""
    text = _LONG_NUMBER.sub(lambda m: mask_person_id(m.group()), str(value).strip())
    return text if len(text) <= width else text[: width - 1] + "…"


def parse_date(value: object) -> date | None:
    """Return the date in a cell (date, Excel serial number or text in common forms), or None."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_number(value)
    return _parse_date_text(str(value))


# A big file repeats a few thousand dates a million times; dates are immutable, so share them.
@lru_cache(maxsize=65_536)
def _parse_date_text(value: str) -> date | None:
    text = _arabic_numerals(unicodedata.normalize("NFKC", value).strip())
    if _SERIAL.fullmatch(text):
        return _from_number(float(text))
    for candidate in (text, text.replace(" ", "")):
        for pattern in _DATE_PATTERNS:
            if match := pattern.match(candidate):
                return _make_date(*(int(g) for g in match.groups()))
    return None


def _arabic_numerals(text: str) -> str:
    """Return 二〇二三年十二月五日 as 2023年12月5日, as court and tax documents write dates."""
    if "年" not in text or text.isascii():
        return text
    text = re.sub(r"([一二三]?)十([一二三四五六七八九]?)", lambda m: (m[1] or "一") + (m[2] or "〇"), text)
    return "".join(_CHINESE_DIGITS.get(c, c) for c in text)


def _from_number(number: float) -> date | None:
    if 19000101 <= number <= 21001231 and float(number).is_integer():
        text = str(int(number))
        return _make_date(int(text[:4]), int(text[4:6]), int(text[6:]))
    # Excel serial days; below 10000 (1927) a number in a date column is a year or a typo.
    if 10000 <= number <= 2958465:
        return _EXCEL_EPOCH + timedelta(days=int(number))
    return None


def _make_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def check_cell(label: str, value: str, limits: Limits) -> tuple[list[str], list[str]]:
    """Return errors (too large, NUL byte) and warnings (looks like a formula) for one cell."""
    if is_oversized(value, limits.max_cell_bytes):
        return [f"{label}: cell is larger than {limits.max_cell_bytes // 1024} KiB"], []
    if "\x00" in value:
        return [f"{label}: contains a NUL byte"], []
    if _FORMULA.match(value[:256]):  # the start decides; a bound keeps the regex linear
        return [], [f"{label}: looks like a spreadsheet formula; kept as text"]
    return [], []


def is_plain_cell(value: str, max_bytes: int) -> bool:
    """Return whether check_cell() has nothing to say about a text cell, cheaply."""
    return (
        len(value) * 4 <= max_bytes and (not value or value[0] not in _FORMULA_STARTS) and "\x00" not in value
    )


def is_oversized(value: str, max_bytes: int) -> bool:
    """Return whether the UTF-8 form of `value` exceeds `max_bytes`, without encoding big cells."""
    if len(value) * 4 <= max_bytes:
        return False
    return len(value) > max_bytes or len(value.encode("utf-8", "surrogatepass")) > max_bytes


def validate_row(
    data: dict[str, Any], schema: ListSchema, *, today: date, invalid: Collection[str] = ()
) -> tuple[list[str], list[str]]:
    """Clean `data` in place (dates, codes, choices) and return the row's errors and warnings.

    `invalid` names fields whose cell was already rejected (too large, NUL byte), so they are
    not also reported missing. Running it again on cleaned data gives the same result.
    """
    errors: list[str] = []
    warnings: list[str] = []
    for spec in schema.fields():
        if spec.name in data:
            _clean_field(spec, data, errors, warnings)
    _check_subject(data, schema, today, errors, warnings)
    _check_dates(data, today, errors, warnings)
    _check_required(data, schema, set(invalid), errors)
    return errors, warnings


def _clean_field(spec: FieldSpec, data: dict[str, Any], errors: list[str], warnings: list[str]) -> None:
    value = data.pop(spec.name)
    if _is_blank(value):
        return
    try:
        data[spec.name] = _CLEANERS.get(spec.type, _clean_text)(value, spec)
    except _Dropped as exc:
        warnings.append(f"{spec.name}: {exc}")
    except ValueError as exc:
        errors.append(f"{spec.name}: {exc}")


def _is_blank(value: Any) -> bool:
    if isinstance(value, str):  # the usual case, without building a list per cell
        return not value.strip()
    return value is None or (
        isinstance(value, str | list) and not [v for v in _as_list(value) if str(v).strip()]
    )


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _clean_text(value: Any, spec: FieldSpec) -> str:
    if isinstance(value, list):
        raise ValueError("several values where one is expected")
    return str(value).strip()


def _clean_date(value: Any, spec: FieldSpec) -> date:
    parsed = parse_date(value)
    if parsed is None:
        raise ValueError(f"not a date: '{shown(value)}'")
    return parsed


def _clean_year(value: Any, spec: FieldSpec) -> int:
    text = unicodedata.normalize("NFKC", str(value)).strip().removesuffix("年度").removesuffix("年")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a year: '{shown(value)}'") from None
    year = int(number) if number.is_finite() else 0
    if not 1900 <= year <= 2100 or number != year:
        raise ValueError(f"not a year: '{shown(value)}'")
    return year


def _clean_number(value: Any, spec: FieldSpec) -> Decimal | int:
    text = re.sub(r"[,\s]", "", unicodedata.normalize("NFKC", str(value)))
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a number: '{shown(value)}'") from None
    if not number.is_finite():
        raise ValueError(f"not a number: '{shown(value)}'")
    if spec.type == INTEGER:
        if number != number.to_integral_value():
            raise ValueError(f"not a whole number: '{shown(value)}'")
        return int(number)
    return number


def _clean_choice(value: Any, spec: FieldSpec) -> str:
    return _pick(value, {c: (c,) for c in spec.choices}, "not one of " + ", ".join(spec.choices))


def _clean_subject_type(value: Any, spec: FieldSpec) -> str:
    return _pick(value, SUBJECT_TYPE_WORDS, "unknown subject type")


def _clean_action(value: Any, spec: FieldSpec) -> str:
    return _pick(value, ACTIONS, "unknown action (use add, update or remove)")


def _pick(value: Any, words: dict[str, tuple[str, ...]], problem: str) -> str:
    """Return the key whose name or words match `value`, ignoring case, width and spacing."""
    folded = _fold(value)
    for key, synonyms in words.items():
        if folded in {_fold(key), *(_fold(w) for w in synonyms)}:
            return key
    raise ValueError(f"{problem}: '{shown(value)}'")


def _fold(value: Any) -> str:
    return re.sub(r"[\s_\-]+", "", unicodedata.normalize("NFKC", str(value))).casefold()


def _clean_list(value: Any, spec: FieldSpec) -> list[str]:
    parts = [p.strip() for v in _as_list(value) for p in _LIST_SEPARATORS.split(str(v))]
    return list(dict.fromkeys(p for p in parts if p))


def _clean_region(value: Any, spec: FieldSpec) -> str:
    code, problem = _region(str(value))
    if problem is None:
        return code
    raise (ValueError if code == "error" else _Dropped)(problem)


# A file names a few hundred regions a million times: remember each answer (or its problem).
@lru_cache(maxsize=16_384)
def _region(value: str) -> tuple[str, str | None]:
    """Return (code, None), or ("error" or "dropped", the message) for a region cell."""
    text = unicodedata.normalize("NFKC", value).strip()
    if _DIGITS.fullmatch(text):
        code = check_region_code(text)
        if code is None:
            return "error", f"unknown administrative division code '{text}'"
        return code, None
    code = region_from_name(text)
    if code is None:
        return "dropped", f"'{shown(text)}' is not a known administrative division; left empty"
    return code, None


def _clean_identifier(value: Any, spec: FieldSpec) -> str:
    return _clean_text(value, spec)


_CLEANERS: dict[str, Callable[[Any, FieldSpec], Any]] = {
    DATE: _clean_date,
    YEAR: _clean_year,
    INTEGER: _clean_number,
    DECIMAL: _clean_number,
    CHOICE: _clean_choice,
    LIST: _clean_list,
    REGION: _clean_region,
    IDENTIFIER: _clean_identifier,
    SUBJECT_TYPE: _clean_subject_type,
    ACTION: _clean_action,
}


def _check_subject(
    data: dict[str, Any], schema: ListSchema, today: date, errors: list[str], warnings: list[str]
) -> None:
    """Check the identifier against the subject type, infer a missing type, refuse minors."""
    inferred = bool(data.pop("subject_type_guessed", False))
    subject_type = data.get("subject_type")
    if "identifier" in data:
        found = identify(data["identifier"], None if inferred else subject_type, today)
        data["identifier"], data["identifier_kind"] = found.value, found.kind
        errors += [f"identifier: {e}" for e in found.errors]
        warnings += [f"identifier: {w}" for w in found.warnings]
        if (subject_type is None or inferred) and (subject_type := _infer_subject_type(found)):
            data["subject_type"], data["subject_type_guessed"], inferred = subject_type, True, True
        if found.kind == PERSON_ID and not found.errors and _minor(found.value, data, today):
            errors.append(
                "identifier: the person is a minor (under 18 on the decision date); minors are never listed"
            )
    if subject_type and subject_type not in schema.subject_types:
        message = f"subject_type: this list does not take {subject_type}"
        if inferred and subject_type not in _PEOPLE:
            warnings.append(message + " (guessed from the identifier)")
        else:
            errors.append(message)


def identify(value: str, subject_type: str | None, today: date) -> Identifier:
    """Return the identifier classified for the row's subject type, accepting legacy tax numbers."""
    expect = None
    if subject_type in _PEOPLE:
        expect = PERSON_ID
    elif subject_type and subject_type != "individual_business":
        expect = "organisation"
    # Legacy tax numbers often carry codes of development zones that GB/T 2260 never listed
    # (360109, Honggutan), so their region part is not checked.
    return classify_identifier(value, expect=expect, today=today)


def _infer_subject_type(found: Identifier) -> str | None:
    if found.errors:
        return None
    if found.kind == PERSON_ID:
        return "natural_person"
    if found.kind == USCC:
        return _USCC_TYPES.get(found.value[:2], "social_organization" if found.value[0] == "5" else None)
    return None


def _minor(person_id: str, data: dict[str, Any], today: date) -> bool:
    decided = data.get("decided_on")
    return is_minor(person_id, on=decided if isinstance(decided, date) else today)


def _check_dates(data: dict[str, Any], today: date, errors: list[str], warnings: list[str]) -> None:
    decided, published, expires = (data.get(k) for k in ("decided_on", "published_on", "expires_on"))
    if isinstance(decided, date) and decided > today:
        errors.append(f"decided_on: in the future ({decided.isoformat()})")
    if isinstance(decided, date) and isinstance(expires, date) and expires < decided:
        errors.append(f"expires_on: {expires.isoformat()} is before decided_on {decided.isoformat()}")
    if isinstance(decided, date) and isinstance(published, date) and published < decided:
        warnings.append(f"published_on: {published.isoformat()} is before decided_on {decided.isoformat()}")
    if isinstance(expires, date) and expires < today and data.get("action") != "remove":
        warnings.append(f"expires_on: {expires.isoformat()} has passed; the record will show as expired")


def _check_required(data: dict[str, Any], schema: ListSchema, invalid: set[str], errors: list[str]) -> None:
    required = list(schema.required)
    if data.get("action") == "remove":
        # A removal only has to say whom it removes.
        required = [] if "identifier" in data or "name" in data else ["name"]
    for name in required:
        if name not in data and name not in invalid and not any(e.startswith(f"{name}: ") for e in errors):
            errors.append(f"{name}: required field is empty")


def duplicate_key(row: RowResult) -> tuple[str, str] | None:
    """Return what makes a row the same record as another: (identifier or name, reference)."""
    who = row.data.get("identifier") or _fold(row.data.get("name") or "")
    if not who:
        return None
    return str(who), _fold(row.data.get("reference") or "")


def find_duplicates(rows: Iterable[RowResult]) -> dict[int, int]:
    """Return {line_no: line_no of the first row with the same key} for rows repeated in a file."""
    first: dict[tuple[str, str], int] = {}
    duplicates: dict[int, int] = {}
    for row in rows:
        key = duplicate_key(row)
        if key is None:
            continue
        if key in first:
            duplicates[row.line_no] = first[key]
        else:
            first[key] = row.line_no
    return duplicates
