"""Parse delimited text (CSV, tab- or semicolon-separated), streaming row by row."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import TextIO

from lists.importers.base import ParseOptions
from lists.importers.decoding import capped_lines, open_text, sniff_delimiter
from lists.importers.rows import Record

_SAMPLE_CHARS = 64 * 1024


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
