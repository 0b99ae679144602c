"""Parse JSON Lines (one object per line), the format of agency sync feeds.

Each line is bounded in size and nesting before and after `json.loads`, so one hostile line
cannot exhaust memory or the stack. Values must be scalars or lists of scalars (aliases).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any

from lists.importers.base import ImportRejected, Limits, ListSchema, ParseOptions, RowResult, start_rows
from lists.importers.rows import RowBuilder, cell_text, mapping_for

_Line = tuple[int, dict[str, Any] | None, str | None]  # line number, object, problem


def parse(
    payload: bytes,
    schema: ListSchema,
    *,
    limits: Limits | None = None,
    overrides: Mapping[str, str | None] | None = None,
    today: date | None = None,
) -> Iterator[RowResult]:
    """Yield one RowResult per non-blank line."""
    options = ParseOptions.make(limits, overrides, today)
    return start_rows(_rows(payload, schema, options))


def read_headers(payload: bytes, *, limits: Limits | None = None) -> list[str]:
    """Return every key used by the objects, in order of first use."""
    return _keys(payload, ParseOptions.make(limits))


def _rows(payload: bytes, schema: ListSchema, options: ParseOptions) -> Iterator[RowResult]:
    builder = RowBuilder(mapping_for(_keys(payload, options), schema, options), schema, options)
    for line_no, obj, problem in objects(payload, options.limits):
        row = (
            builder.from_record(line_no, obj) if obj is not None else builder.problem(line_no, problem or "")
        )
        if row is not None:
            yield row


def _keys(payload: bytes, options: ParseOptions) -> list[str]:
    keys: dict[str, None] = {}
    for _line, obj, _problem in objects(payload, options.limits):
        keys.update(dict.fromkeys(obj or {}))
        if len(keys) > options.limits.max_columns:
            raise ImportRejected(f"the objects use more than {options.limits.max_columns} different keys")
    return list(keys)


def objects(payload: bytes, limits: Limits) -> Iterator[_Line]:
    """Yield each non-blank line's object, its values flattened to text, or why it is unusable."""
    for line_no, raw, problem in _lines(payload, limits.max_row_bytes):
        if problem:
            yield line_no, None, problem
            continue
        obj, problem = _load(raw, limits.max_json_depth)
        yield line_no, obj, problem


def _lines(payload: bytes, max_bytes: int) -> Iterator[tuple[int, bytes, str | None]]:
    stream = io.BytesIO(payload)
    line_no = 0
    while line := stream.readline(max_bytes + 1):
        line_no += 1
        if len(line) > max_bytes and not line.endswith(b"\n"):
            while (rest := stream.readline(max_bytes)) and not rest.endswith(b"\n"):
                pass
            yield line_no, b"", f"line is longer than {max_bytes // 1024} KiB"
        elif line.strip():
            yield line_no, line.removeprefix(b"\xef\xbb\xbf") if line_no == 1 else line, None


def _load(raw: bytes, max_depth: int) -> tuple[dict[str, Any] | None, str | None]:
    """Return the line's object with flattened values, or the reason it cannot be used."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not valid UTF-8 (byte offset {exc.start} in the line)"
    if text.count("[") + text.count("{") > max_depth and _depth(text) > max_depth:
        return None, f"nested more than {max_depth} levels deep"
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return None, f"not valid JSON: {getattr(exc, 'msg', exc)}"
    if not isinstance(obj, dict):
        return None, "not a JSON object"
    return _flatten(obj)


def _depth(text: str) -> int:
    """Return the deepest bracket nesting outside strings, without building anything."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
        elif char == '"':
            in_string = True
    return deepest


def _flatten(obj: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """Return values as cell text; a list of scalars becomes "a; b" (an aliases cell)."""
    flat: dict[str, Any] = {}
    for key, value in obj.items():
        items = value if isinstance(value, list) else [value]
        if any(isinstance(item, dict | list) for item in items):
            return None, f"{key}: nested values are not supported"
        # NUL is dropped from keys: they become headers, stored as jsonb, which cannot hold it.
        flat[key.replace("\x00", "")] = "; ".join(cell_text(item) for item in items if item is not None)
    return flat, None
