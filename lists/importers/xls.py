"""Parse legacy Excel 97-2003 workbooks (XLS) with xlrd 2.x.

xlrd reads a whole sheet at once; a BIFF8 sheet holds at most 65,536 rows, so the memory this
takes is bounded by the upload size limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import xlrd

from lists.importers.base import ImportRejected, Limits
from lists.importers.rows import Record, sheet_rows

NOT_XLS = "not a valid XLS file"
_ENCRYPTED = "EncryptedPackage".encode("utf-16-le")


def records(payload: bytes, limits: Limits) -> Iterator[Record]:
    book = _open(payload)
    try:
        for index in range(book.nsheets):
            sheet = book.sheet_by_index(index)
            rows = sheet_rows(_values(book, sheet), limits)
            first = next(rows, None)
            if first is not None:
                yield first
                yield from rows
                return
            book.unload_sheet(index)
    finally:
        book.release_resources()


def _open(payload: bytes) -> xlrd.Book:
    if _ENCRYPTED in payload[: 1 << 20]:
        # Password-protected XLSX files are wrapped in the same container as XLS.
        raise ImportRejected("the file is password-protected; remove the password and upload again")
    try:
        return xlrd.open_workbook(file_contents=payload, on_demand=True)
    except Exception as exc:  # xlrd raises XLRDError, CompDocError, struct.error, ... on bad input
        raise ImportRejected(f"{NOT_XLS} ({exc})") from None


def _values(book: xlrd.Book, sheet: Any) -> Iterator[tuple[Any, ...]]:
    """Yield each row's values, dates as datetimes and error cells as their Excel text."""
    for rowx in range(sheet.nrows):
        types, values = sheet.row_types(rowx), sheet.row_values(rowx)
        yield tuple(_value(book, kind, value) for kind, value in zip(types, values, strict=True))


def _value(book: xlrd.Book, kind: int, value: Any) -> Any:
    if kind == xlrd.XL_CELL_DATE:
        try:
            return xlrd.xldate_as_datetime(value, book.datemode)
        except (ValueError, OverflowError, xlrd.xldate.XLDateError):
            return value
    if kind == xlrd.XL_CELL_ERROR:
        return xlrd.error_text_from_code.get(value, "#ERROR")
    if kind == xlrd.XL_CELL_EMPTY or kind == xlrd.XL_CELL_BLANK:
        return None
    return value
