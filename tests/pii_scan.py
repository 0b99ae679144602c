"""pytest plugin: watch everything the suite produces for a full personal ID number (issue 8).

Session-wide it records, as they are produced:
- every response body the Django test client (and DRF's APIClient, which builds on it) returns,
  streamed bodies included, as they are read;
- every log record (a handler on the root logger);
- every file the portal writes under MEDIA_ROOT/exports/ (bulk exports for integrators).

Each text is scanned once, on the spot, and only hits are kept, so the cost is one regular
expression pass. A hit is an 18-character GB 11643 number whose check digit, birth date and
division code are all valid (python-stdnum's `cn.ric`), unless it is also a valid Unified Social
Credit Code (firms' identifiers are public). The scan test of tests/test_no_full_person_id.py,
moved to the end of the run, fails on any hit.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from stdnum.cn import ric, uscc

CANDIDATE = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
SCAN_TEST = "test_no_response_log_or_export_of_the_suite_shows_a_full_person_id"
MAX_SCAN_CHARS = 20_000_000  # larger bodies are scanned in their first 20 M characters


@dataclass(frozen=True)
class Finding:
    where: str
    number: str

    def __str__(self) -> str:
        return f"{self.where}: {self.number[:6]}…{self.number[-4:]}"


FINDINGS: list[Finding] = []


def find_person_ids(text: str) -> list[str]:
    """Return the full personal ID numbers in a text (firms' USCCs excluded)."""
    found = []
    for match in CANDIDATE.finditer(text[:MAX_SCAN_CHARS]):
        number = match.group().upper()
        if ric.is_valid(number) and not uscc.is_valid(number):
            found.append(number)
    return found


def scan(where: str, data: bytes | str) -> None:
    """Record the personal ID numbers found in one body, log line or file."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes | bytearray) else data
    if len(text) >= 18:
        FINDINGS.extend(Finding(where, number) for number in dict.fromkeys(find_person_ids(text)))


def _teed(where: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Pass a streamed body through, scanning it once it has been read to the end."""
    seen = []
    for chunk in chunks:
        seen.append(chunk if isinstance(chunk, bytes) else str(chunk).encode())
        yield chunk
    scan(where, b"".join(seen))


class _LogScanner(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        # A malformed record must not break the test it came from.
        with contextlib.suppress(Exception):
            scan(f"log {record.name}", record.getMessage())


LOG_SCANNER = _LogScanner(level=logging.DEBUG)


@pytest.fixture(scope="session", autouse=True)
def _record_person_ids() -> Iterator[None]:
    """Watch test-client responses, log records and export files for the whole session."""
    from django.core.files.storage import Storage
    from django.test.client import Client

    original_request, original_save = Client.request, Storage.save

    def request(self: Any, **kwargs: Any) -> Any:
        response = original_request(self, **kwargs)
        where = (
            f"{kwargs.get('REQUEST_METHOD', 'GET')} {kwargs.get('PATH_INFO', '')} → {response.status_code}"
        )
        if getattr(response, "streaming", False):
            response.streaming_content = _teed(where, response.streaming_content)
        else:
            scan(where, response.content)
        return response

    def save(self: Any, name: str | None, content: Any, *args: Any, **kwargs: Any) -> str:
        saved = original_save(self, name, content, *args, **kwargs)
        if saved.replace("\\", "/").startswith("exports/"):
            with self.open(saved, "rb") as stored:
                scan(f"export {saved}", stored.read(MAX_SCAN_CHARS))
        return saved

    Client.request, Storage.save = request, save  # type: ignore[method-assign]
    root = logging.getLogger()
    root.addHandler(LOG_SCANNER)
    try:
        yield
    finally:
        Client.request, Storage.save = original_request, original_save  # type: ignore[method-assign]
        root.removeHandler(LOG_SCANNER)


@pytest.fixture(autouse=True)
def _keep_the_log_scanner() -> Iterator[None]:
    """Put the log handler and level back if something reconfigured logging (Celery hijacks the
    root logger, and a worker started in a test may leave it at ERROR, hiding records)."""
    root = logging.getLogger()
    level = root.level
    if LOG_SCANNER not in root.handlers:
        root.addHandler(LOG_SCANNER)
    yield
    root.setLevel(level)


@pytest.hookimpl(trylast=True)  # after pytest-django's own reordering
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the scan's own test last, after everything it watches."""
    items.sort(key=lambda item: item.name == SCAN_TEST)
