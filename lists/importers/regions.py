"""Check administrative-division codes (GB/T 2260) and read division names as codes.

The table is the one python-stdnum ships (`numdb.get("cn/loc")`): provinces with their county
rows, historical ones included, since old decisions carry old codes. Codes are returned in the
six-digit form: 44 → 440000, 4403 → 440300.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

from stdnum import numdb

_CURRENT = re.compile(r"^(?:\[\d{4}-\])?([^\[\]]+)$")
_ANY = re.compile(r"^(?:\[[^\]]*\])?([^\[\]]+)$")
_SUFFIXES = ("壮族自治区", "回族自治区", "维吾尔自治区", "特别行政区", "自治区", "省", "市", "地区")
# The table writes these two in traditional characters only.
_SIMPLIFIED = {"香港": "81", "香港特别行政区": "81", "澳门": "82", "澳门特别行政区": "82"}
_NOT_PLACES = {"市辖区", "县", "省直辖县级行政单位", "自治区直辖县级行政单位"}


def check_region_code(code: str) -> str | None:
    """Return the six-digit form of a 2-, 4- or 6-digit division code, or None if unknown."""
    if not code.isdigit() or len(code) not in (2, 4, 6):
        return None
    known = code in _prefixes() if len(code) < 6 else code in _codes()
    return code.ljust(6, "0") if known else None


def region_from_name(text: str) -> str | None:
    """Return the six-digit code for a division name (广东, 深圳市, 广东省深圳市), or None."""
    name = re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))
    code = _resolve(name, "")
    return code.ljust(6, "0") if code else None


def _resolve(name: str, within: str) -> str | None:
    """Return the code of `name` inside the division `within`, reading it prefix by prefix."""
    names = _names()
    code = names.get(name)
    if code and code.startswith(within) and code != within:
        return code
    for cut in range(len(name) - 1, 1, -1):
        head = names.get(name[:cut])
        if head and head.startswith(within) and head != within:
            # 湖北省直辖县级行政区划, 深圳南山: keep what was recognised when the rest is not.
            return _resolve(name[cut:], head) or head
    return None


@cache
def _codes() -> frozenset[str]:
    """Return every six-digit code in the table."""
    return frozenset(code for code, _level, _field in _divisions())


@cache
def _prefixes() -> frozenset[str]:
    """Return the 2- and 4-digit prefixes of every code (a city may have no row of its own)."""
    return frozenset(p for code in _codes() for p in (code[:2], code[:4]))


def _divisions() -> list[tuple[str, str, str]]:
    """Return (six-digit code, level, name field) for every row of the table."""
    rows = []
    for _length, province, _high, props, children in numdb.get("cn/loc").prefixes:
        rows.append((province + "0000", "province", props.get("province", "")))
        for _l, child, _h, child_props, _c in children:
            level = "skip" if child == "0000" else "prefecture" if child.endswith("00") else "county"
            rows.append((province + child, level, child_props.get("county", "")))
    return rows


@cache
def _names() -> dict[str, str]:
    """Return division names → 2-, 4- or 6-digit code; provinces first, ambiguous counties left out."""
    names: dict[str, str] = dict(_SIMPLIFIED)
    counties: dict[str, set[str]] = {}
    for code, level, field in _divisions():
        for name in _current_names(field):
            if level == "province":
                names.setdefault(name, code[:2])
                names.setdefault(_short_name(name), code[:2])
    for code, level, field in _divisions():
        for name in set(_current_names(field)) - _NOT_PLACES:
            if level == "prefecture":
                names.setdefault(name, code[:4])
                names.setdefault(_short_name(name), code[:4])
            elif level == "county":
                counties.setdefault(name, set()).add(code)
    for name, codes in counties.items():
        if len(codes) == 1:
            names.setdefault(name, codes.pop())
    return names


def _current_names(field: str) -> list[str]:
    """Return the names in a table field like "[-1982]忻县地区,[1983-]忻州地区" still in use."""
    parts = [p.strip() for p in field.split(",") if p.strip()]
    current = [m.group(1) for p in parts if (m := _CURRENT.match(p))]
    return current or [m.group(1) for p in parts[-1:] if (m := _ANY.match(p))]


def _short_name(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name
