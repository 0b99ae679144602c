#!/usr/bin/env python
"""Benchmark the lifecycle jobs over the demo listings: expiry, and restriction recompute.

    .venv/bin/python bench/lifecycle.py [--template xy_bench] [--database xy_lifecycle_bench]

The jobs write (they expire listings and load a new catalogue edition), so the script never runs
on the database it is given: it clones it with CREATE DATABASE … TEMPLATE (which needs no other
connection to the template at that moment, so it retries) and runs there. Target (issue 5):
expiry plus recompute over 1,000,000 listings in ≤ 60 s. Results go to docs/benchmarks.md
between the lifecycle markers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- lifecycle:start -->", "<!-- lifecycle:end -->"
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/xinyong"


def with_db(url: str, name: str) -> str:
    """Return the URL with another database name."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def clone(url: str, template: str, target: str, *, attempts: int = 60) -> None:
    """Create `target` as a copy of `template`, retrying while something else is connected to it."""
    with psycopg.connect(with_db(url, "postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{target}"')
        for attempt in range(attempts):
            try:
                admin.execute(f'CREATE DATABASE "{target}" TEMPLATE "{template}"')
                return
            except psycopg.errors.ObjectInUse:
                print(f"  {template} is in use, retrying ({attempt + 1}/{attempts})", flush=True)
                time.sleep(5)
    raise SystemExit(f"could not clone {template}: other sessions kept it busy")


def timed(
    label: str, results: list[tuple[str, float, str]], fn: Callable[[], Any], note: Callable[[Any], str]
) -> Any:
    started = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - started
    results.append((label, seconds, note(value)))
    print(f"  {label}: {seconds:.1f} s ({note(value)})", flush=True)
    return value


def scalar(sql: str, params: list[Any] | None = None) -> Any:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchone()[0]


def new_edition(code: str) -> str:
    """Load a copy of the current catalogue edition minus one measure, as a new edition would."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT id FROM lists_catalogueedition WHERE is_current")
        old = cursor.fetchone()[0]
        cursor.execute("UPDATE lists_catalogueedition SET is_current = false WHERE id = %s", [old])
        cursor.execute(
            "INSERT INTO lists_catalogueedition (code, title, source_sha256, loaded_at, is_current) "
            "VALUES (%s, 'benchmark edition', repeat('0', 64), now(), true) RETURNING id",
            [code],
        )
        new = cursor.fetchone()[0]
        cursor.execute("SELECT code FROM lists_measure WHERE edition_id = %s ORDER BY code LIMIT 1", [old])
        dropped = cursor.fetchone()[0]
        cursor.execute(
            """
            INSERT INTO lists_measure (edition_id, code, name_zh, name_en, category, kind, implementing_agency,
                legal_basis, subject_types, duration_months, applies_to_note, confidence, sources)
            SELECT %s, code, name_zh, name_en, category, kind, implementing_agency, legal_basis, subject_types,
                   duration_months, applies_to_note, confidence, sources
            FROM lists_measure WHERE edition_id = %s AND code <> %s
            """,
            [new, old, dropped],
        )
        cursor.execute(
            """
            INSERT INTO lists_measure_triggered_by (measure_id, creditlist_id)
            SELECT n.id, t.creditlist_id FROM lists_measure_triggered_by t
            JOIN lists_measure o ON o.id = t.measure_id AND o.edition_id = %s
            JOIN lists_measure n ON n.edition_id = %s AND n.code = o.code
            """,
            [old, new],
        )
    return dropped


def run() -> list[tuple[str, float, str]]:
    from lists.services.lifecycle import expire_listings
    from lists.services.measures import apply_measures

    results: list[tuple[str, float, str]] = []
    # Pick "today" so that about a tenth of the in-force listings with an end date are due.
    today = (
        scalar(
            "SELECT percentile_disc(0.1) WITHIN GROUP (ORDER BY expires_on) FROM lists_listing "
            "WHERE status IN ('active', 'disputed') AND expires_on IS NOT NULL"
        )
        or dt.date.today()
    )
    today = max(today, dt.date.today())
    timed(
        "expire_listings (due ones)",
        results,
        lambda: expire_listings(today=today),
        lambda n: f"{n:,} expired",
    )
    timed(
        "expire_listings again (idempotent)",
        results,
        lambda: expire_listings(today=today),
        lambda n: f"{n:,}",
    )
    note = lambda r: f"{r.lifted:,} lifted, {r.derived:,} derived, {r.changes:,} feed changes"  # noqa: E731
    timed(
        "apply_measures, catalogue unchanged",
        results,
        lambda: apply_measures(reason="catalogue", feed_reason="catalogue"),
        note,
    )
    dropped = new_edition(f"bench-{int(time.time())}")
    timed(
        f"apply_measures, new edition (without {dropped})",
        results,
        lambda: apply_measures(reason="catalogue", feed_reason="catalogue"),
        note,
    )
    return results


def write_doc(header: list[str], results: list[tuple[str, float, str]]) -> None:
    lines = [START, "## Lifecycle: expiry and restriction recompute (`bench/lifecycle.py`)", "", *header, ""]
    lines += ["| Step | Seconds | Result |", "|---|---:|---|"]
    lines += [f"| {label} | {seconds:.1f} | {note} |" for label, seconds, note in results]
    # results: expire, expire again, recompute (catalogue unchanged), recompute (new edition)
    steady, edition = results[0][1] + results[2][1], results[3][1]
    verdict = "meets" if steady <= 60 else "misses"
    lines += [
        "",
        f"Expiry + full recompute of restrictions: **{steady:.1f} s** ({verdict} the ≤ 60 s target).",
        f"A new catalogue edition is the worst case ({edition:.0f} s, a background task): each "
        "restriction row points at one edition's measure, so every live restriction is rewritten to the "
        "new edition (carried over unchanged, no feed entry) and only real differences reach the feed. "
        "Keying restrictions by measure code instead of measure row would make that a no-op.",
        END,
    ]
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if START in text and END in text:
        text = text[: text.index(START)] + "\n".join(lines) + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    url = os.environ.get("DATABASE_URL", DEFAULT_URL)
    parser.add_argument("--template", default=urlsplit(url).path.lstrip("/"), help="database to copy")
    parser.add_argument("--database", default="xy_lifecycle_bench", help="the copy the jobs run in")
    parser.add_argument("--keep", action="store_true", help="keep the copy afterwards")
    args = parser.parse_args()

    print(f"cloning {args.template} into {args.database}", flush=True)
    clone(url, args.template, args.database)
    os.environ["DATABASE_URL"] = with_db(url, args.database)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("DJANGO_DEBUG", "1")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection

    # A bulk-loaded demo database may not have been analysed yet; production has autovacuum.
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    analyze_seconds = time.perf_counter() - started
    listings = scalar("SELECT count(*) FROM lists_listing")
    in_force = scalar("SELECT count(*) FROM lists_listing WHERE status IN ('active', 'disputed')")
    restrictions = scalar("SELECT count(*) FROM lists_restriction WHERE lifted_at IS NULL")
    load = os.getloadavg()
    header = [
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on a copy of `{args.template}`: {listings:,} listings "
        f"({in_force:,} in force), {restrictions:,} live restrictions; PostgreSQL "
        f"{connection.cursor().connection.info.server_version // 10000}, {os.cpu_count()} cores shared with "
        f"other work (load average {load[0]:.1f} at the start), so read the numbers as upper bounds. "
        f"The copy was analysed first ({analyze_seconds:.0f} s, not counted).",
    ]
    print(header[0], flush=True)
    results = run()
    write_doc(header, results)
    connection.close()
    if not args.keep:
        with psycopg.connect(with_db(url, "postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{args.database}"')
    print(f"results written to {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
