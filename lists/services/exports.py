"""Bulk exports of the in-force listings, per list and for all public lists, as CSV and JSON Lines.

An export is read in one REPEATABLE READ snapshot together with the feed's latest sequence
number, so "export at seq N, then follow the feed from N" reproduces the portal exactly. Each
row has the same shape as a change's `data` (lists.services.feed.listing_snapshot).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tempfile
from collections.abc import Iterator
from typing import Any

from django.core.files import File
from django.db import connection

from ..models import CreditList, Export
from .screening import read_snapshot

KEEP_PER_KIND = 3
COLUMNS = [
    "listing_id",
    "list",
    "subject_id",
    "subject_type",
    "name",
    "identifier",
    "reference",
    "reason",
    "severity",
    "decided_on",
    "published_on",
    "expires_on",
    "status",
    "content_hash",
]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")

_ROWS_SQL = """
    SELECT jsonb_build_object(
        'listing_id', l.id, 'list', cl.code, 'subject_id', s.id,
        'subject_type', s.subject_type, 'name', s.name,
        'identifier', COALESCE(NULLIF(s.uscc, ''), NULLIF(s.person_id_masked, ''),
                               NULLIF(s.org_code, ''), s.legacy_ids[1], ''),
        'reference', l.reference, 'reason', l.reason, 'severity', l.severity,
        'decided_on', l.decided_on, 'published_on', l.published_on,
        'expires_on', l.expires_on, 'status', l.status, 'content_hash', l.content_hash)
    FROM lists_listing l
    JOIN lists_subject s ON s.id = l.subject_id
    JOIN lists_creditlist cl ON cl.id = l.credit_list_id AND cl.is_public
    WHERE l.status IN ('active', 'disputed') {scope}
    ORDER BY l.id
"""


def safe_cell(value: Any) -> str:
    """Return a CSV cell that a spreadsheet will not run as a formula (=, +, -, @ are quoted with ')."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def export_listings(*, credit_list: CreditList | None, fmt: str) -> Export:
    """Write an export of the list (all public lists when None) at the current data version."""
    if fmt not in Export.Format.values:
        raise ValueError(f"unknown export format {fmt!r}")
    with tempfile.TemporaryFile() as tmp:
        digest = hashlib.sha256()
        with read_snapshot() as cursor:
            cursor.execute("SELECT COALESCE(MAX(seq), 0) FROM lists_change")
            seq = int(cursor.fetchone()[0])
            rows = 0
            for chunk, count in _encoded(cursor, credit_list, fmt):
                tmp.write(chunk)
                digest.update(chunk)
                rows += count
        size = tmp.tell()
        tmp.seek(0)
        code = credit_list.code if credit_list else "all"
        export = Export(
            credit_list=credit_list, format=fmt, seq=seq, rows=rows, sha256=digest.hexdigest(), size=size
        )
        export.file.save(f"{code}-{seq}.{fmt}", File(tmp), save=False)
        export.save()
    _prune(credit_list, fmt)
    return export


def _encoded(cursor: Any, credit_list: CreditList | None, fmt: str) -> Iterator[tuple[bytes, int]]:
    """Yield the export file in chunks of encoded rows, with the number of rows in each."""
    scope, params = ("AND l.credit_list_id = %s", [credit_list.pk]) if credit_list else ("", [])
    cursor.execute(_ROWS_SQL.format(scope=scope), params)
    if fmt == Export.Format.CSV:
        yield ("\ufeff" + ",".join(COLUMNS) + "\r\n").encode(), 0  # BOM: Excel reads the CSV as UTF-8
    while batch := cursor.fetchmany(5000):
        rows = [_as_dict(row[0]) for row in batch]
        if fmt == Export.Format.JSONL:
            yield (
                "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode(),
                len(rows),
            )
        else:
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerows([safe_cell(r[c]) for c in COLUMNS] for r in rows)
            yield out.getvalue().encode(), len(rows)


def _as_dict(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else value


def _prune(credit_list: CreditList | None, fmt: str) -> None:
    """Delete all but the newest exports of one list and format, files included."""
    old = Export.objects.filter(credit_list=credit_list, format=fmt).order_by("-seq", "-id")[KEEP_PER_KIND:]
    for export in list(old):
        export.file.delete(save=False)
        export.delete()


def latest_export(*, credit_list: CreditList | None, fmt: str) -> Export | None:
    """Return the newest export of the list (all lists when None) in the format."""
    return Export.objects.filter(credit_list=credit_list, format=fmt).order_by("-seq", "-id").first()


def refresh_exports(*, force: bool = False) -> list[Export]:
    """Export every public list (and all of them) whose feed moved since its last export."""
    made = []
    with connection.cursor() as cursor:
        cursor.execute("SELECT credit_list_id, MAX(seq) FROM lists_change GROUP BY credit_list_id")
        last_seq = dict(cursor.fetchall())
    targets: list[CreditList | None] = [*CreditList.objects.public().order_by("code"), None]
    for credit_list in targets:
        moved = max(last_seq.values(), default=0) if credit_list is None else last_seq.get(credit_list.pk, 0)
        for fmt in Export.Format.values:
            latest = latest_export(credit_list=credit_list, fmt=fmt)
            if force or latest is None or latest.seq < moved:
                made.append(export_listings(credit_list=credit_list, fmt=fmt))
    return made
