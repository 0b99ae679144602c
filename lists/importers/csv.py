"""Parse delimited text (CSV, tab- or semicolon-separated), streaming row by row."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from datetime import date
from typing import TextIO

from lists.importers.base import Limits, ListSchema, ParseOptions, RowResult, start_rows
from lists.importers.decoding import capped_lines, open_text, sniff_delimiter
from lists.importers.rows import Record, header_row, reject_keyvalue_layout, tabular_rows

_SAMPLE_CHARS = 64 * 1024


def parse(
    payload: bytes,
    schema: ListSchema,
    *,
    limits: Limits | None = None,
    overrides: Mapping[str, str | None] | None = None,
    today: date | None = None,
) -> Iterator[RowResult]:
    """Yield one RowResult per non-blank line after the header; the header is line 1 or later."""
    options = ParseOptions.make(limits, overrides, today)
    return start_rows(tabular_rows(text_records(payload, options), schema, options))


def read_headers(payload: bytes, *, limits: Limits | None = None) -> list[str]:
    """Return the header row, for showing the column mapping before the import."""
    options = ParseOptions.make(limits)
    records = reject_keyvalue_layout(text_records(payload, options))
    return next((header_row(cells, options) for _line, cells, _problem in records if any(cells)), [])


def text_records(payload: bytes, options: ParseOptions) -> Iterator[Record]:
    """Yield (line number, cells, problem) for each record of a delimited text file."""
    stream = open_text(payload)
    delimiter = _delimiter(stream)
    oversized: set[int] = set()
    reader = csv.reader(capped_lines(stream, options.limits.max_row_bytes, oversized), delimiter=delimiter)
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, [], f"could not read this line: {exc}"
            continue
        if too_long := oversized.intersection(range(start, reader.line_num + 1)):
            oversized -= too_long
            yield start, [], f"line is longer than {options.limits.max_row_bytes // 1024} KiB"
            continue
        yield start, cells, None


def _delimiter(stream: TextIO) -> str:
    """Return the delimiter of the first non-blank line, leaving the stream at its start."""
    sample = stream.read(_SAMPLE_CHARS)
    stream.seek(0)
    first = next((line for line in sample.splitlines() if line.strip()), "")
    return sniff_delimiter(first)
