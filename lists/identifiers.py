"""Normalise, classify and protect subject identifiers.

Unified Social Credit Codes (GB 32100) are validated with python-stdnum; a failing check digit
is a warning, not an error, because real early pilot codes (Fujian/Xiamen) fail it. Personal
ID numbers (GB 11643) are never stored: callers keep `person_id_hash()` and `mask_person_id()`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date

from django.conf import settings
from stdnum.cn import ric, uscc
from stdnum.exceptions import InvalidChecksum, ValidationError

USCC = "uscc"
ORG_CODE = "org_code"
LEGACY_REG = "legacy_reg"
PERSON_ID = "person_id"

_SEPARATORS = re.compile(r"[\s\-_/.·]+")
_PERSON_ID_SHAPE = re.compile(r"^\d{17}[\dX]$")
_USCC_SHAPE = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$")
_ORG_CODE_SHAPE = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{8}[0-9X]$")
_PROVINCES = {
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64",
    "65", "71", "81", "82",
}  # fmt: skip


@dataclass
class Identifier:
    """One identifier as read from a query or a file, with what is wrong with it."""

    kind: str | None
    value: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def is_valid(self) -> bool:
        return self.kind is not None and not self.errors


def compact_identifier(text: str) -> str:
    """Return the identifier without full-width forms, separators or lower case."""
    text = text or ""
    if text.isascii():  # NFKC leaves ASCII as it is; most files never need it
        if text.isalnum():  # the usual code: nothing to remove (ingest calls this twice a row)
            return text.upper()
    else:
        text = unicodedata.normalize("NFKC", text)
    return _SEPARATORS.sub("", text).upper()


def classify_identifier(text: str, *, expect: str | None = None, today: date | None = None) -> Identifier:
    """Return what kind of identifier `text` is, validated, with errors and warnings.

    `expect` is PERSON_ID when the row is known to be a natural person, or "organisation";
    without it the shape decides, since an all-digit USCC and an ID number can look alike.
    """
    value = compact_identifier(text)
    today = today or date.today()
    if len(value) in (15, 18) and expect == PERSON_ID:
        return _check_person_id(value, today)
    if len(value) == 18 and expect is None and _looks_like_person_id(value):
        return _check_person_id(value, today)
    if len(value) == 18:
        return _check_uscc(value)
    if len(value) == 15 and value.isdigit():
        # A first-generation ID card and a legacy registration number look alike; a valid
        # birth date in positions 7-12 decides it unless the row says what it is.
        if expect is None and value[:2] in _PROVINCES and _birth_date_15(value) is not None:
            return _check_person_id(value, today)
        return Identifier(LEGACY_REG, value)
    if len(value) == 15 and value[:6].isdigit() and _ORG_CODE_SHAPE.match(value[6:]):
        # A tax registration number: region code + organisation code (36072359378986X).
        return _check_org_code(Identifier(LEGACY_REG, value), value[6:], "tax registration number")
    if _ORG_CODE_SHAPE.match(value):
        return _check_org_code(Identifier(ORG_CODE, value), value, "organisation code")
    return Identifier(None, value, errors=["not a recognised identifier"])


def _check_org_code(result: Identifier, code: str, label: str) -> Identifier:
    """Warn when a GB 11714 organisation code's check character does not match."""
    total = sum(int(c, 36) * w for c, w in zip(code[:8], (3, 7, 9, 10, 5, 8, 4, 2), strict=True))
    expected = {10: "X", 11: "0"}.get(11 - total % 11, str(11 - total % 11))
    if code[8] != expected:
        result.warnings.append(f"{label} check character does not match")
    return result


def _looks_like_person_id(value: str) -> bool:
    return (
        _PERSON_ID_SHAPE.match(value) is not None
        and value[:2] in _PROVINCES
        and _birth_date_18(value) is not None
        and value[6:8] in {"19", "20"}
    )


def _check_uscc(value: str) -> Identifier:
    result = Identifier(USCC, value)
    if not _USCC_SHAPE.match(value):
        result.errors.append("malformed Unified Social Credit Code")
    elif not value.isascii():
        _check_uscc_stdnum(value, result)  # non-ASCII digits: keep python-stdnum's judgement
    elif uscc_check_digit(value) != value[17]:
        # The shape is right, so only the check digit can be wrong (GB 32100 allows letters
        # in positions 1-2 where stdnum does not; the digit is computed the same way).
        result.warnings.append("Unified Social Credit Code check digit does not match")
    return result


def uscc_check_digit(value: str) -> str:
    """Return the GB 32100 check character for the first 17 characters of an ASCII USCC.

    The same arithmetic as stdnum.cn.uscc.calc_check_digit with a precomputed table per position
    and no compact()/index() per character: ingest calls it once per row (tests compare the two).
    """
    total = sum([table[c] for table, c in zip(_USCC_TABLES, value[:17], strict=False)])
    return _USCC_ALPHABET[-total % 31]


_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_TABLES = tuple(
    {c: i * weight for i, c in enumerate(_USCC_ALPHABET)}
    for weight in (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
)


def _check_uscc_stdnum(value: str, result: Identifier) -> None:
    """Judge a well-shaped USCC with python-stdnum, the reference for uscc_check_digit()."""
    try:
        uscc.validate(value)
    except InvalidChecksum:
        result.warnings.append("Unified Social Credit Code check digit does not match")
    except ValidationError:
        # stdnum insists on digits in positions 1-8 where GB 32100 allows letters in 1-2.
        if not value[2:8].isdigit():
            result.errors.append("malformed Unified Social Credit Code")
        elif uscc.calc_check_digit(value[:17]) != value[17]:
            result.warnings.append("Unified Social Credit Code check digit does not match")


def _check_person_id(value: str, today: date) -> Identifier:
    result = Identifier(PERSON_ID, value)
    born = _birth_date_18(value) if len(value) == 18 else _birth_date_15(value)
    if value[:2] not in _PROVINCES:
        result.errors.append("unknown region in personal ID number")
    if born is None:
        result.errors.append("bad birth date in personal ID number")
    elif born > today:
        result.errors.append("birth date in personal ID number is in the future")
    if len(value) == 18 and not _PERSON_ID_SHAPE.match(value):
        result.errors.append("malformed personal ID number")
    elif len(value) == 18 and ric.calc_check_digit(value) != value[-1]:
        result.errors.append("personal ID number check digit does not match")
    if not result.errors and not _county_known(value):
        result.warnings.append("personal ID number region code not known for its birth year")
    return result


def _birth_date_18(value: str) -> date | None:
    try:
        return date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return None


def _birth_date_15(value: str) -> date | None:
    try:
        return date(1900 + int(value[6:8]), int(value[8:10]), int(value[10:12]))
    except ValueError:
        return None


def _county_known(value: str) -> bool:
    try:
        ric.get_birth_place(to_18_digits(value))
    except ValidationError:
        return False
    return True


def birth_date(person_id: str) -> date | None:
    """Return the birth date encoded in a personal ID number."""
    value = compact_identifier(person_id)
    return _birth_date_18(value) if len(value) == 18 else _birth_date_15(value)


def is_minor(person_id: str, *, on: date) -> bool:
    """Return whether the person was under 18 on the given date."""
    born = birth_date(person_id)
    if born is None:
        return False
    years = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    return years < 18


def to_18_digits(value: str) -> str:
    """Return a 15-digit first-generation ID number in its 18-digit form."""
    if len(value) != 15:
        return value
    body = value[:6] + "19" + value[6:]
    return body + ric.calc_check_digit(body + "?")  # stdnum skips the last character


def person_id_hash(person_id: str) -> str:
    """Return the keyed hash that stands for a personal ID number in storage and lookups."""
    value = to_18_digits(compact_identifier(person_id))
    key = settings.PERSON_ID_HASH_KEY.encode()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def mask_person_id(person_id: str) -> str:
    """Return the display form of a personal ID number: first four and last four only."""
    value = compact_identifier(person_id)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]
