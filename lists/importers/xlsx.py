"""Parse Excel 2007+ workbooks (XLSX) in openpyxl's streaming read-only mode.

An XLSX file is a zip of XML parts, so before openpyxl sees it the archive is checked: its
unpacked size and compression ratio (zip bombs), and every XML part for DOCTYPE/ENTITY
declarations (billion-laughs and external-entity attacks). openpyxl parses with defusedxml
when it is installed; it is a hard requirement here (requirements.txt), imported below so a
missing install fails loudly instead of silently parsing with the unsafe standard library.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any

import defusedxml  # noqa: F401  (openpyxl switches to defused parsing only when this imports)
from openpyxl import load_workbook
from openpyxl.workbook.workbook import Workbook

from lists.importers.base import MIB, ImportRejected, Limits
from lists.importers.rows import Record, sheet_rows

NOT_XLSX = "not a valid XLSX file"
_XML_SUFFIXES = (".xml", ".rels", ".vml")
_MAX_MEMBERS = 10_000
_RATIO_FLOOR = 1 * MIB  # small parts may compress well without being a threat
_DECLARATIONS = tuple(
    word.encode(codec) for word in ("<!doctype", "<!entity") for codec in ("ascii", "utf-16-le", "utf-16-be")
)


def check_archive(payload: bytes, limits: Limits) -> None:
    """Reject a zip that unpacks too large, compresses suspiciously well, or declares XML entities."""
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            members = archive.infolist()
            _check_sizes(members, limits)
            if "xl/workbook.xml" not in archive.namelist():
                raise ImportRejected(f"{NOT_XLSX} (it is a zip archive without a workbook)")
            for member in members:
                if member.filename.lower().endswith(_XML_SUFFIXES):
                    _check_declarations(archive, member)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise ImportRejected(f"{NOT_XLSX} ({exc})") from None


def _check_sizes(members: list[zipfile.ZipInfo], limits: Limits) -> None:
    # zipfile never returns more bytes than a member declares (it fails the CRC instead), so
    # the declared sizes bound what openpyxl can be made to unpack.
    if len(members) > _MAX_MEMBERS:
        raise ImportRejected(f"{NOT_XLSX} (it has {len(members):,} parts)")
    total = sum(m.file_size for m in members)
    if total > limits.max_uncompressed_bytes:
        raise ImportRejected(
            f"the XLSX file unpacks to {total // MIB:,} MB, more than the {limits.max_uncompressed_bytes // MIB} MB"
            " allowed; split it into smaller files"
        )
    for member in members:
        if member.flag_bits & 0x1:
            raise ImportRejected("the XLSX file is password-protected; remove the password and upload again")
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > _RATIO_FLOOR and ratio > limits.max_compression_ratio:
            raise ImportRejected(
                f"the XLSX part {member.filename} is compressed {ratio:,.0f} to 1, which only a zip bomb does"
            )


def _check_declarations(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> None:
    """Scan one XML part, chunk by chunk, for DOCTYPE or ENTITY declarations."""
    tail = b""
    with archive.open(member) as part:
        while chunk := part.read(MIB):
            window = (tail + chunk).lower()
            if any(declaration in window for declaration in _DECLARATIONS):
                raise ImportRejected(
                    f"the XLSX part {member.filename} declares a DOCTYPE or XML entities, which spreadsheets"
                    " never need; it was refused as unsafe"
                )
            tail = window[-32:]


def records(payload: bytes, limits: Limits) -> Iterator[Record]:
    check_archive(payload, limits)
    workbook = _open(payload)
    try:
        for sheet in _sheets(workbook):
            rows = sheet_rows(sheet.iter_rows(values_only=True), limits)
            first = next(rows, None)
            if first is not None:
                yield first
                yield from rows
                return
    finally:
        workbook.close()


def _open(payload: bytes) -> Workbook:
    try:
        return load_workbook(io.BytesIO(payload), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises anything from KeyError to lxml errors on bad input
        raise ImportRejected(f"{NOT_XLSX} ({type(exc).__name__})") from None


def _sheets(workbook: Workbook) -> list[Any]:
    """Return the worksheets, visible ones first."""
    sheets = list(workbook.worksheets)
    return sorted(sheets, key=lambda s: getattr(s, "sheet_state", "visible") != "visible")
