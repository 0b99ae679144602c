"""Fetch an agency feed over HTTP(S): every page, bounded in time and size, or a clear error.

Only the network and the page format live here; what a run does with the result is
lists.services.sync. No ORM writes: a fetch may take minutes and holds no transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from django.conf import settings

from ..models import Source

PAGE_KEYS = ("results", "items", "records", "data")
CURSOR_KEYS = ("cursor", "next_cursor")
USER_AGENT = "Xinyong-sync/1.0"


class SyncFailed(Exception):
    """A run failed in a way a retry will not fix (configuration, page cap, rejected batch)."""


class FeedUnavailable(SyncFailed):
    """The feed could not be read this time (timeout, connection, 5xx, malformed page): retry."""


@dataclass
class Feed:
    """What one run fetched, ready for the batch pipeline."""

    payload: bytes
    file_format: str
    records: int
    cursor: str
    pages: int


def fetch_feed(source: Source, *, started: dt.datetime) -> Feed:
    """Fetch the whole feed (every page) for one run, or raise."""
    headers = _auth_headers(source)
    url = _first_url(source)
    if source.format == Source.Format.JSON:
        return _fetch_json_pages(source, url, headers, started)
    body = _get(url, headers, source.timeout_seconds)
    lines = sum(1 for line in body.splitlines() if line.strip())
    records = max(lines - 1, 0) if source.format == Source.Format.CSV else lines
    return Feed(body, source.format, records, started.isoformat(), 1)


def _fetch_json_pages(source: Source, url: str, headers: dict[str, str], started: dt.datetime) -> Feed:
    records: list[dict[str, Any]] = []
    cursor, seen = "", set[str]()
    next_url: str | None = url
    while next_url:
        if len(seen) >= source.max_pages:
            raise SyncFailed(f"the feed has more than {source.max_pages} pages (the source's page cap)")
        if next_url in seen:
            raise FeedUnavailable(f"page {len(seen) + 1} links back to an earlier page ({next_url})")
        seen.add(next_url)
        page = _load_json(_get(next_url, headers, source.timeout_seconds), next_url, len(seen))
        items, following, page_cursor = _read_page(page, next_url, len(seen))
        records.extend(items)
        cursor = page_cursor or cursor
        next_url = following
    payload = "\n".join(json.dumps(r, ensure_ascii=False) for r in records).encode()
    return Feed(payload, "jsonl", len(records), cursor or started.isoformat(), len(seen))


def _load_json(body: bytes, url: str, number: int) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise FeedUnavailable(f"page {number} is not valid JSON ({url}): {str(exc)[:200]}") from exc


def _read_page(page: Any, url: str, number: int) -> tuple[list[dict[str, Any]], str | None, str]:
    """Return a page's records, the next page's URL and the feed's cursor, or raise if malformed."""
    if isinstance(page, list):
        items, following, cursor = page, None, ""
    elif isinstance(page, dict):
        key = next((k for k in PAGE_KEYS if k in page), None)
        if key is None:
            raise FeedUnavailable(f"page {number} has none of the keys {', '.join(PAGE_KEYS)} ({url})")
        items, following = page[key], _next_url(page, url)
        cursor = next((str(page[k]) for k in CURSOR_KEYS if page.get(k)), "")
    else:
        raise FeedUnavailable(f"page {number} is neither a list nor an object ({url})")
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise FeedUnavailable(f"page {number}: the records are not a list of objects ({url})")
    return items, following, cursor


def _next_url(page: dict[str, Any], url: str) -> str | None:
    """Follow a `next` link, or page numbers (`page` of `total_pages`)."""
    link = page.get("next")
    if isinstance(link, str) and link:
        return urljoin(url, link)
    number, total = page.get("page"), page.get("total_pages") or page.get("pages")
    if isinstance(number, int) and isinstance(total, int) and number < total:
        return _with_params(url, {"page": str(number + 1)})
    return None


def _first_url(source: Source) -> str:
    url = source.url
    if source.mode == Source.Mode.INCREMENTAL and source.cursor and source.cursor_param:
        url = _with_params(url, {source.cursor_param: source.cursor})
    return url


def _with_params(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True)) | params
    return urlunsplit(parts._replace(query=urlencode(query)))


def _auth_headers(source: Source) -> dict[str, str]:
    if not source.auth_header:
        return {}
    secret = os.environ.get(source.auth_env_var, "") if source.auth_env_var else ""
    if not secret:
        raise SyncFailed(
            f"the auth header needs the environment variable {source.auth_env_var or '(none named)'} "
            "on the worker, and it is not set"
        )
    return {source.auth_header: secret}


# Only http(s): no file:// or ftp:// even through a redirect (urllib's default opener has both).
_OPENER = urllib.request.OpenerDirector()
for _handler in (
    urllib.request.ProxyHandler(),
    urllib.request.HTTPHandler(),
    urllib.request.HTTPSHandler(),
    urllib.request.HTTPRedirectHandler(),
    urllib.request.HTTPDefaultErrorHandler(),
    urllib.request.HTTPErrorProcessor(),
):
    _OPENER.add_handler(_handler)


def _get(url: str, headers: dict[str, str], timeout: int) -> bytes:
    """Return the body of one GET, bounded in time and size, or raise FeedUnavailable/SyncFailed."""
    if urlsplit(url).scheme not in {"http", "https"}:
        raise SyncFailed(f"only http and https feeds are allowed, not {url}")
    limit = int(getattr(settings, "UPLOAD_MAX_BYTES", 200 * 1024 * 1024))
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **headers})  # noqa: S310
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return _read_bounded(response, url, timeout, limit)
    except urllib.error.HTTPError as exc:
        message = f"HTTP {exc.code} from {url}"
        raise (
            FeedUnavailable(message) if exc.code >= 500 or exc.code == 429 else SyncFailed(message)
        ) from exc
    except (urllib.error.URLError, TimeoutError, OSError, HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise FeedUnavailable(f"cannot read {url}: {reason or type(exc).__name__}") from exc


def _read_bounded(response: Any, url: str, timeout: int, limit: int) -> bytes:
    # The socket timeout bounds each read; a server trickling bytes needs an overall deadline too.
    deadline = time.monotonic() + timeout
    chunks, size = [], 0
    while chunk := response.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise SyncFailed(f"{url} sent more than {limit} bytes (UPLOAD_MAX_BYTES)")
        if time.monotonic() > deadline:
            raise FeedUnavailable(f"{url} did not finish within {timeout} s")
        chunks.append(chunk)
    return b"".join(chunks)
