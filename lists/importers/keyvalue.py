"""Parse the key/value layout some agencies publish: one `key,value` line per field.

A record is a block of lines; the next record starts when the first key of the file comes
back or after a blank line (shared/data/samples/qinghai_tax_blacklist_..._keyvalue.csv). This
importer is only used when the uploader chooses it: format detection never guesses it, and
the CSV parser refuses such a file with one clear message instead of loading it half.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date

from lists.importers.base import ImportRejected, Limits, ListSchema, ParseOptions, RowResult, start_rows
from lists.importers.csv import text_records
from lists.importers.headers import normalize_header
from lists.importers.rows import Record, RowBuilder, is_blank, mapping_for

# With this many different keys and no repeated block, the file is a table, not key/value.
_TABLE_LIKE_KEYS = 50


@dataclass
class _Block:
    """One record under construction."""

    line_no: int
    values: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    last_key: str = ""


def parse(
    payload: bytes,
    schema: ListSchema,
    *,
    limits: Limits | None = None,
    overrides: Mapping[str, str | None] | None = None,
    today: date | None = None,
) -> Iterator[RowResult]:
    """Yield one RowResult per block; its line number is the line of the block's first key."""
    options = ParseOptions.make(limits, overrides, today)
    return start_rows(_rows(payload, schema, options))


def read_headers(payload: bytes, *, limits: Limits | None = None) -> list[str]:
    """Return every key used in the file, in order of first use."""
    return _keys(payload, ParseOptions.make(limits))


def _rows(payload: bytes, schema: ListSchema, options: ParseOptions) -> Iterator[RowResult]:
    # Two passes over the bytes: the first learns the keys, so the mapping is fixed up front.
    builder = RowBuilder(mapping_for(_keys(payload, options), schema, options), schema, options)
    for block in blocks(text_records(payload, options)):
        row = builder.from_record(block.line_no, block.values, block.errors)
        if row is not None:
            yield row


def _keys(payload: bytes, options: ParseOptions) -> list[str]:
    keys: dict[str, None] = {}
    count = 0
    for block in blocks(text_records(payload, options)):
        count += 1
        keys.update(dict.fromkeys(block.values))
        if len(keys) > options.limits.max_columns:
            raise ImportRejected(f"the file uses more than {options.limits.max_columns} different keys")
    if count == 1 and len(keys) > _TABLE_LIKE_KEYS:
        raise ImportRejected("this file does not look like a key/value layout; choose the CSV format")
    return list(keys)


def blocks(records: Iterator[Record]) -> Iterator[_Block]:
    """Group `key,value` lines into records."""
    first_key = ""
    block: _Block | None = None
    for line_no, cells, problem in records:
        if problem:
            block = block or _Block(line_no)
            block.errors.append(f"line {line_no}: {problem}")
            continue
        if is_blank(cells):
            if block:
                yield block
            block = None
            continue
        key, value = cells[0].strip(), _value(cells[1:])
        first_key = first_key or normalize_header(key)
        if block and key and normalize_header(key) == first_key:
            yield block
            block = None
        block = block or _Block(line_no)
        _add(block, key, value, line_no)
    if block:
        yield block


def _value(cells: list[str]) -> str:
    # Publishers split long values over several cells without quoting (金额,450.12,元); the
    # commas are artefacts of the export, so the pieces are joined as they were written.
    return "".join(cells).strip()


def _add(block: _Block, key: str, value: str, line_no: int) -> None:
    """Add one line to a block: a new key, a continuation of the last value, or a repeat."""
    if not key and block.last_key:
        block.values[block.last_key] = (block.values[block.last_key] + value).strip()
    elif not key:
        block.errors.append(f"line {line_no}: a value without a key")
    elif key in block.values:
        block.errors.append(f"line {line_no}: {key} appears twice in this record")
    else:
        block.values[key] = value
        block.last_key = key
