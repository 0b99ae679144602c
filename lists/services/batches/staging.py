"""Stage a batch: parse the stored file and write every row's outcome as a BatchRow.

Rows go in with COPY in chunks; nothing here queries the database per row, so a million-row
file costs the parser's time plus a few seconds of COPY.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

import orjson
from django.db import connection

from ...identifiers import PERSON_ID, compact_identifier, mask_person_id, person_id_hash
from ...importers import ListSchema, RowResult
from ...models import Batch, BatchRow, CreditList
from ..periods import default_expiry

CHUNK = 5_000
ANALYZE_ABOVE = 5_000
NAME_MAX = 300
REFERENCE_MAX = 300
# Keys of BatchRow.data that are bookkeeping, not published content.
INTERNAL_KEYS = ("identifier", "identifier_kind", "person_id_hash", "action", "expires_on_default", "missing")
_INTERNAL = frozenset(INTERNAL_KEYS)
_EMPTY: tuple[Any, ...] = (None, "", [])
ROW_COLUMNS = (
    "batch_id", "line_no", "raw", "data", "errors", "warnings", "outcome", "action",
    "source_key", "content_hash", "diff", "listing_id",
)  # fmt: skip


def list_schema(credit_list: CreditList) -> ListSchema:
    """Return the upload schema of a list: core columns, its own fields, its subject types."""
    schema = ListSchema.from_json(credit_list.field_schema or {})
    if credit_list.subject_types:
        schema.subject_types = list(credit_list.subject_types)
    return schema


def json_default(value: Any) -> Any:
    """Serialise the values parsers produce (dates, decimals) for JSON columns."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


# A million rows are serialised three times each, so through orjson: ~6x faster than the json
# module (jsonb keeps no formatting, and the hash only has to be stable, see content_hash).
def _fast_dumps(value: dict[str, Any]) -> str:
    return orjson.dumps(value, default=json_default).decode()


def _list_dumps(value: list[str]) -> str:
    return orjson.dumps(value).decode() if value else "[]"


class RowStager:
    """Turn parsed rows into BatchRow tuples: protect ID numbers, default the expiry, key, hash."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.credit_list = batch.credit_list
        self.last_line = 0

    def stage(self, row: RowResult) -> tuple[Any, ...]:
        """Return the COPY tuple for one parsed row."""
        data, errors, warnings = row.data, row.errors, row.warnings  # the row is staged once
        raw = self._protect(data, row.raw)
        self._check_lengths(data, errors)
        self._fill_expiry(data, errors)
        source_key = self._source_key(data)  # duplicates in the file are found in SQL (diffing)
        self.last_line = max(self.last_line, row.line_no)
        outcome = BatchRow.Outcome.INVALID if errors else (BatchRow.Outcome.WARNING if warnings else "valid")
        action = "" if errors else ("remove" if data.get("action") == "remove" else "add")
        # The raw cells of a valid row are in the kept file; only problem rows carry them here.
        raw_json = "{}" if outcome == "valid" else _fast_dumps(raw)
        return (
            self.batch.pk, row.line_no, raw_json, _fast_dumps(data), _list_dumps(errors),
            _list_dumps(warnings), str(outcome), action, source_key, content_hash(data), "{}", None,
        )  # fmt: skip

    def _protect(self, data: dict[str, Any], raw: dict[str, str]) -> dict[str, str]:
        """Replace a personal ID number by its keyed hash and masked form, in data and raw cells."""
        if data.get("identifier_kind") != PERSON_ID or not data.get("identifier"):
            return raw
        full = str(data["identifier"])
        data["person_id_hash"], data["identifier"] = person_id_hash(full), mask_person_id(full)
        return {k: (mask_person_id(full) if compact_identifier(v) == full else v) for k, v in raw.items()}

    def _check_lengths(self, data: dict[str, Any], errors: list[str]) -> None:
        for name, limit in (("name", NAME_MAX), ("reference", REFERENCE_MAX), ("name_en", 400)):
            if len(str(data.get(name) or "")) > limit:
                errors.append(f"{name}: longer than {limit} characters")
        if any(len(str(a)) > NAME_MAX for a in data.get("aliases") or []):
            errors.append(f"aliases: an alias is longer than {NAME_MAX} characters")

    def _fill_expiry(self, data: dict[str, Any], errors: list[str]) -> None:
        """Give a row without an expiry the list's default publication period."""
        if data.get("expires_on") or errors:
            return
        decided = data.get("decided_on") or data.get("published_on")
        if not isinstance(decided, dt.date):
            return
        expiry = default_expiry(self.credit_list, decided, str(data.get("severity") or ""))
        if expiry is not None:
            data["expires_on"], data["expires_on_default"] = expiry, True

    def _source_key(self, data: dict[str, Any]) -> str:
        return source_key(data)


def source_key(data: dict[str, Any]) -> str:
    """Return the stable key of a record within its list: who (by identifier) and which decision."""
    if data.get("person_id_hash"):
        who = "p:" + str(data["person_id_hash"])
    elif data.get("identifier"):
        who = "i:" + compact_identifier(str(data["identifier"]))
    elif data.get("name"):
        who = "n:" + compact_identifier(str(data["name"])) + "/" + str(data.get("region") or "")
    else:
        return ""
    key = f"{who}|{str(data.get('reference') or '').strip()}"
    # Keys must fit the column; a long reference is replaced by its digest, still stable.
    return key if len(key) <= 300 else f"{who}|#{hashlib.sha256(key.encode()).hexdigest()}"


def canonical(data: dict[str, Any]) -> dict[str, Any]:
    """Return the published content of a row: no bookkeeping keys, no empty values."""
    # `v or` settles most values without the three comparisons.
    return {k: v for k, v in data.items() if k not in _INTERNAL and (v or v not in _EMPTY)}


def content_hash(data: dict[str, Any]) -> str:
    """Return the digest that tells whether a record changed since it was published.

    Equal digests let the diff skip a row; different ones only send it to the field-by-field
    comparison, so a digest made another way (by an earlier version) costs time, never a wrong
    answer, and publishing refreshes it on the listings found unchanged.
    """
    return hashlib.sha256(
        orjson.dumps(canonical(data), default=json_default, option=orjson.OPT_SORT_KEYS)
    ).hexdigest()


def copy_rows(rows: Iterable[tuple[Any, ...]], table: str = "lists_batchrow") -> None:
    """COPY BatchRow tuples into the table (or a staging table of the same shape)."""
    connection.ensure_connection()
    raw = connection.connection
    columns = ", ".join(ROW_COLUMNS)
    with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:  # noqa: S608
        for row in rows:
            copy.write_row(row)


def analyze(*tables: str, rows: int = ANALYZE_ABOVE) -> None:
    """Refresh planner statistics after a big load.

    A freshly filled table still looks empty to the planner, which then joins a million staged
    rows with nested loops over sequential scans: minutes instead of seconds. Small batches
    skip it: their plans are fine either way.
    """
    if rows < ANALYZE_ABOVE:
        return
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"ANALYZE {table}")  # noqa: S608 - table names are code


def chunks(rows: Iterator[tuple[Any, ...]], size: int = CHUNK) -> Iterator[list[tuple[Any, ...]]]:
    """Yield lists of up to `size` rows."""
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
