"""Read uploaded or fetched list files into validated rows, without touching the database.

Every format has a parser, `parse(payload, schema, *, limits, overrides, today)` returning an
iterator of RowResult, and a header reader, `read_headers(payload, *, limits)` (PARSERS,
HEADER_READERS): tabular formats through their record readers. File-level problems raise
ImportRejected when `parse()` is called (it reads up to the first row), or during iteration for
problems found later (row limit, a damaged sheet). Storing, diffing and publishing are the
service's job (lists/services).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import date
from functools import partial

from lists.importers import csv, jsonl, keyvalue, xls, xlsx
from lists.importers.base import (
    FieldSpec,
    ImportRejected,
    Limits,
    ListSchema,
    ParseOptions,
    RowResult,
    detect_format,
)
from lists.importers.headers import ColumnMapping, HeaderMapping, map_headers
from lists.importers.rows import (
    Record,
    RecordReader,
    RowBuilder,
    is_blank,
    open_tabular,
    parse_tabular,
    read_tabular_headers,
)
from lists.importers.validation import find_duplicates, validate_row

__all__ = [
    "FORMATS",
    "PARSERS",
    "ColumnMapping",
    "FieldSpec",
    "HeaderMapping",
    "ImportRejected",
    "Limits",
    "ListSchema",
    "ParseOptions",
    "Record",
    "RowBuilder",
    "RowResult",
    "detect_format",
    "find_duplicates",
    "is_blank",
    "map_file_headers",
    "map_headers",
    "open_records",
    "parse",
    "validate_row",
]

Parser = Callable[..., Iterator[RowResult]]

# Tabular formats only read records; rows.parse_tabular builds them into rows, so that other
# processes can build them too (lists.services.batches.workers).
RECORD_READERS: dict[str, RecordReader] = {
    "csv": csv.text_records,
    "xlsx": lambda payload, options: xlsx.records(payload, options.limits),
    "xls": lambda payload, options: xls.records(payload, options.limits),
}
PARSERS: dict[str, Parser] = {
    **{name: partial(parse_tabular, read) for name, read in RECORD_READERS.items()},
    "keyvalue": keyvalue.parse,
    "jsonl": jsonl.parse,
}
HEADER_READERS: dict[str, Callable[..., list[str]]] = {
    **{name: partial(read_tabular_headers, read) for name, read in RECORD_READERS.items()},
    "keyvalue": keyvalue.read_headers,
    "jsonl": jsonl.read_headers,
}
FORMATS = tuple(PARSERS)


def parse(
    payload: bytes,
    schema: ListSchema,
    *,
    format: str | None = None,  # noqa: A002  (the name the callers use)
    limits: Limits | None = None,
    overrides: Mapping[str, str | None] | None = None,
    today: date | None = None,
) -> Iterator[RowResult]:
    """Return the file's rows; the format is detected from the bytes unless given.

    Detection never picks "keyvalue": that layout is only read when the uploader chooses it.
    """
    return PARSERS[_format(payload, format)](payload, schema, limits=limits, overrides=overrides, today=today)


def open_records(
    payload: bytes,
    schema: ListSchema,
    *,
    format: str | None = None,  # noqa: A002
    limits: Limits | None = None,
    overrides: Mapping[str, str | None] | None = None,
    today: date | None = None,
) -> tuple[RowBuilder, Iterator[Record]] | None:
    """Return the row builder and the records after the header; None for a non-tabular format.

    `parse()` is the same as building each record in turn; apart, the records can be read here
    and built elsewhere (lists.services.batches.workers).
    """
    reader = RECORD_READERS.get(_format(payload, format))
    if reader is None:
        return None
    options = ParseOptions.make(limits, overrides, today)
    return open_tabular(reader(payload, options), schema, options)


def map_file_headers(
    payload: bytes,
    schema: ListSchema,
    *,
    format: str | None = None,  # noqa: A002
    limits: Limits | None = None,
    overrides: Mapping[str, str | None] | None = None,
) -> HeaderMapping:
    """Return how the file's columns would map to the list's fields, for the uploader to confirm."""
    headers = HEADER_READERS[_format(payload, format)](payload, limits=limits)
    return map_headers(headers, schema, overrides)


def _format(payload: bytes, format: str | None) -> str:  # noqa: A002
    chosen = format or detect_format(payload)
    if chosen not in PARSERS:
        raise ImportRejected(f"unknown file format '{chosen}'; use one of {', '.join(PARSERS)}")
    return chosen
