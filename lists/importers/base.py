"""Shared types of the import parsers: row results, file-level rejection, limits, format sniffing."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.conf import settings

from lists.importers.schema import FieldSpec, ListSchema

__all__ = [
    "FieldSpec",
    "ImportRejected",
    "Limits",
    "ListSchema",
    "ParseOptions",
    "RowResult",
    "detect_format",
    "start_rows",
]

KIB = 1024
MIB = 1024 * KIB
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK\x03\x04"
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


class ImportRejected(Exception):
    """The whole file cannot be imported; `message` says why in words an uploader understands."""

    def __init__(self, message: str, *, line_no: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line_no = line_no


@dataclass
class RowResult:
    """One record of a source file: what it said, what we read from it, and what is wrong.

    `line_no` is the line (text) or row (spreadsheet) a user sees, the header being 1; for a
    key/value block it is the line of the block's first key. `raw` maps each header to its
    cell text. `data` maps canonical field names to cleaned values (dates as `date`, region
    as a six-digit code, aliases as a list) and adds `identifier_kind` (see lists.identifiers)
    and, when the file has no subject type but the identifier shows it, `subject_type` with
    `subject_type_guessed=True`. `data["identifier"]` may hold a full
    personal ID number: hash it (person_id_hash) before storing; messages never contain one.
    """

    line_no: int
    raw: dict[str, str]
    data: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def is_valid(self) -> bool:
        """Return whether the row can be imported (warnings allowed)."""
        return not self.errors


@dataclass(frozen=True)
class Limits:
    """Bounds that keep one upload from exhausting memory or time."""

    max_rows: int = 2_000_000
    max_cell_bytes: int = 32 * KIB
    max_row_bytes: int = 1 * MIB  # one text line or JSON line; text lines are measured in characters
    max_columns: int = 500
    max_empty_rows: int = 10_000  # consecutive empty spreadsheet rows before we stop reading
    max_uncompressed_bytes: int = 200 * MIB
    max_compression_ratio: int = 100
    max_json_depth: int = 20

    @classmethod
    def from_settings(cls) -> Limits:
        """Return the limits configured in Django settings (UPLOAD_MAX_ROWS, ...), else defaults."""
        if not settings.configured:
            return cls()
        names = {
            "max_rows": "UPLOAD_MAX_ROWS",
            "max_cell_bytes": "UPLOAD_MAX_CELL_BYTES",
            "max_uncompressed_bytes": "UPLOAD_MAX_UNCOMPRESSED_BYTES",
        }
        found = {key: int(getattr(settings, name)) for key, name in names.items() if hasattr(settings, name)}
        return cls(**found)


@dataclass(frozen=True)
class ParseOptions:
    """What every parser needs besides the bytes and the schema."""

    limits: Limits
    today: date
    overrides: Mapping[str, str | None] | None = None

    @classmethod
    def make(
        cls,
        limits: Limits | None = None,
        overrides: Mapping[str, str | None] | None = None,
        today: date | None = None,
    ) -> ParseOptions:
        """Return options with defaults filled in from settings and the clock."""
        return cls(limits or Limits.from_settings(), today or _today(), overrides)


def _today() -> date:
    if settings.configured and settings.USE_TZ:
        from django.utils import timezone

        return timezone.localdate()
    return date.today()


def detect_format(payload: bytes) -> str:
    """Return "xlsx", "xls", "jsonl" or "csv" from the file's bytes; never guesses "keyvalue"."""
    if not payload.strip():
        raise ImportRejected("the file has no rows (it is empty)")
    if payload.startswith(_ZIP_MAGIC):
        return "xlsx"
    if payload.startswith(_OLE2_MAGIC):
        return "xls"
    head = _text_head(payload)
    if head.startswith("%pdf"):
        raise ImportRejected("this is a PDF document, not a spreadsheet; upload the list as CSV or XLSX")
    if head.startswith("<") and any(tag in head for tag in ("<html", "<table", "<!doctype html")):
        # Many "xls" downloads from government sites are HTML pages in disguise.
        raise ImportRejected(
            "this is a web page (HTML), not a spreadsheet; open it in Excel and save as XLSX"
        )
    if head.startswith("{"):
        return "jsonl"
    return "csv"


def _text_head(payload: bytes) -> str:
    head = payload[:2048]
    for bom in _BOMS:
        if head.startswith(bom):
            head = head[len(bom) :]
    return head.replace(b"\x00", b"").decode("latin-1").lstrip().lower()


def start_rows(rows: Iterator[RowResult]) -> Iterator[RowResult]:
    """Run a parser up to its first row, so file-level problems raise now, not on first use."""
    try:
        first = next(rows)
    except StopIteration:
        raise ImportRejected("the file has no rows") from None
    return _chain(first, rows)


def _chain(first: RowResult, rows: Iterator[RowResult]) -> Iterator[RowResult]:
    yield first
    yield from rows
