"""Benchmark the integrators' API on a large demo database, and screening quality on real samples.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/xy_api_bench REDIS_URL=redis://127.0.0.1:6379/11 \
        .venv/bin/python bench/api.py [--write-docs]

Runs in-process through Django's test client (so authentication, Redis quotas, validation,
serialisation and request logging are all measured). Use a clone of the demo database
(CREATE DATABASE xy_api_bench TEMPLATE xy_bench): it writes one API key and request logs,
and loads the quality samples inside a transaction that is rolled back.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "bench" / "data"  # copies of ../shared/data/samples (see the README there)
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
# Production-like: DEBUG off (no query log kept per request).
os.environ.setdefault("DJANGO_DEBUG", "0")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-not-secret")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402

from agencies.models import ApiKey  # noqa: E402
from lists.models import Subject, SubjectType  # noqa: E402
from lists.search.text import normalize_name  # noqa: E402
from lists.services.screening import DEFAULT_THRESHOLD, ScreenQuery, screen  # noqa: E402
from lists.services.subjects import reindex_subject_names  # noqa: E402

rng = random.Random(6)


def ensure_tables() -> None:
    """Create the integrator tables if the demo database was made before they existed."""
    from lists.models import integrations

    existing = set(connection.introspection.table_names())
    models = [
        integrations.ApiRequestLog,
        integrations.Watchlist,
        integrations.WatchItem,
        integrations.Webhook,
    ]
    models += [integrations.WebhookDelivery, integrations.Export]
    with connection.schema_editor() as editor:
        for model in models:
            if model._meta.db_table not in existing:
                editor.create_model(model)


def prepare() -> None:
    """Do what autovacuum does on a live system: planner statistics, and the GIN pending list
    flushed (a freshly loaded clone scans ~140 pending pages on every bigram lookup)."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute("SELECT gin_clean_pending_list('subjectname_bigram_gin')")


def bench_baseline(client: Client, n: int) -> float:
    """Return the p95 of the cheapest endpoint: the framework's own share of every latency."""
    return p95(timed(lambda: client.get("/api/v1/agencies"), n))


def client_with_key() -> Client:
    prefix, secret = ApiKey.new_secret()
    ApiKey.objects.create(
        name=f"bench {prefix}",
        prefix=prefix,
        key_hash=ApiKey.hash_secret(secret),
        scopes=["read", "screen", "operator"],
        rate_per_minute=10_000_000,
        quota_per_day=100_000_000,
    )
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_HOST="localhost")


def sample_subjects(n: int) -> list[tuple[str, str | None, str]]:
    """Return n random (name, uscc, subject_type) of the database's subjects."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT MAX(id) FROM lists_subject")
        top = cursor.fetchone()[0]
        ids = rng.sample(range(1, top + 1), min(top, n * 2))
        cursor.execute("SELECT name, uscc, subject_type FROM lists_subject WHERE id = ANY(%s)", [ids])
        rows = cursor.fetchall()
    return rows[:n]


def listed_identifiers(n: int) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT s.uscc FROM lists_listing l JOIN lists_subject s ON s.id = l.subject_id
               WHERE l.status = 'active' AND s.uscc IS NOT NULL AND l.id > (SELECT MAX(id) / 3 FROM lists_listing)
               LIMIT %s""",
            [n],
        )
        return [row[0] for row in cursor.fetchall()]


def timed(fn, repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def p95(times: list[float]) -> float:
    return statistics.quantiles(times, n=20)[18] * 1000


def mixed_queries(n: int) -> list[dict[str, str]]:
    """Half names of known subjects, a quarter their identifiers, a quarter names that are not there."""
    known = sample_subjects(n)
    queries = []
    for i, (name, uscc, _) in enumerate(known):
        if i % 4 == 1 and uscc:
            queries.append({"identifier": uscc})
        elif i % 4 == 3:
            queries.append({"name": f"{name[:2]}不存在{i}号贸易有限公司"})
        else:
            queries.append({"name": name})
    return queries


def bench_screen_batch(client: Client, rounds: int) -> dict[str, float]:
    times, candidates = [], 0
    for _ in range(rounds):
        body = {"queries": mixed_queries(1000)}
        started = time.perf_counter()
        response = client.post("/api/v1/screen", body, content_type="application/json")
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.content[:300]
        candidates += sum(len(r["candidates"]) for r in response.json()["results"])
    return {"queries_per_s": 1000 * rounds / sum(times), "seconds_per_request": statistics.mean(times)}


def bench_screen_single(client: Client, n: int) -> float:
    queries = mixed_queries(n)
    it = iter(queries)
    times = timed(
        lambda: client.post("/api/v1/screen", {"queries": [next(it)]}, content_type="application/json"), n
    )
    return p95(times)


def bench_check(client: Client, n: int) -> tuple[float, list[Any]]:
    """Return the p95 of n checks, and their answers (outcome and restrictions) in order."""
    identifiers = listed_identifiers(n) or [s[1] for s in sample_subjects(n) if s[1]]
    it = iter(identifiers * 2)
    measure = "M_GOV_PROCUREMENT_BAN"
    answers: list[Any] = []

    def check() -> None:
        body = client.get("/api/v1/check", {"identifier": next(it), "measure": measure}).json()
        answers.append((body["outcome"], body["restrictions"]))

    return p95(timed(check, n)), answers


def bench_check_pending(client: Client, n: int) -> tuple[float, list[Any]]:
    """bench_check while a recompute is pending: restrictions are derived, not read."""
    from lists.models import PendingRecompute

    pending = PendingRecompute.objects.create(reason="benchmark")
    try:
        return bench_check(client, n)
    finally:
        pending.delete()


def bench_feed(client: Client, total: int) -> float:
    after, read = 0, 0
    started = time.perf_counter()
    while read < total:
        response = client.get("/api/v1/changes", {"after": after, "limit": 10_000})
        page = json.loads(response.content)
        if not page["items"]:
            break
        read += len(page["items"])
        after = page["next_after"]
    return read / (time.perf_counter() - started)


class Rollback(Exception):
    pass


def quality() -> dict[str, Any]:
    """Load the sample subjects, screen hits and non-hits at the default threshold, roll back."""
    result: dict[str, Any] = {}
    try:
        with transaction.atomic():
            non_hits = _non_hits()
            hits = _load_samples({normalize_name(q["name"]) for q in non_hits})
            result = _score(hits, non_hits)
            raise Rollback
    except Rollback:
        pass
    return result


def _load_samples(excluded: set[str]) -> list[tuple[str, dict[str, str], int]]:
    """Create the sample subjects; return (query type, query, expected subject id) of the eval set."""
    subjects: dict[str, int] = {}
    with open(SAMPLES / "listed_company_names.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if not row["full_name_cn"].strip():
                continue
            subject = Subject.objects.create(
                subject_type=SubjectType.LEGAL_PERSON,
                name=row["full_name_cn"],
                name_en=row["english_name"],
                aliases=[
                    a for a in {row["short_name_clean"], row["short_name_raw"], row["former_short_name"]} if a
                ],
                former_names=[row["former_full_name_cn"]] if row["former_full_name_cn"] else [],
            )
            reindex_subject_names(subject)
            subjects[f"{row['exchange']}:{row['code']}"] = subject.pk
    with open(SAMPLES / "org_name_identifier_pairs.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            code = re.sub(r"\s", "", row["identifier"]).upper()
            # The Jiangxi A-grade sample names are the non-hits: never load them as subjects.
            if (
                row["id_kind"] != "uscc18"
                or normalize_name(row["name"]) in excluded
                or f"ID:{code}" in subjects
            ):
                continue
            if Subject.objects.filter(uscc=code).exists() or not row["name"].strip():
                continue
            subject = Subject.objects.create(
                subject_type=SubjectType.LEGAL_PERSON, name=row["name"], uscc=code
            )
            reindex_subject_names(subject)
            subjects[f"ID:{code}"] = subject.pk
    queries = []
    with open(SAMPLES / "search_eval_queries.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["expected_key"] in subjects and row["query"].strip():
                field = "identifier" if row["query_type"].startswith("uscc") else "name"
                queries.append((row["query_type"], {field: row["query"]}, subjects[row["expected_key"]]))
    return queries


def _non_hits() -> list[dict[str, str]]:
    with open(SAMPLES / "jiangxi_A_level_sample_150rows_GBK.csv", encoding="gbk") as f:
        names = [row[1] for row in csv.reader(f)][1:]
    return [{"name": n} for n in names if n.strip()]


def _run(queries: list[dict[str, str]]) -> list[set[int]]:
    found = []
    for start in range(0, len(queries), 1000):
        chunk = [ScreenQuery(**q) for q in queries[start : start + 1000]]
        found += [
            {c.subject_id for c in cands} for cands in screen(chunk, threshold=DEFAULT_THRESHOLD).results
        ]
    return found


def _score(hits: list[tuple[str, dict[str, str], int]], non_hits: list[dict[str, str]]) -> dict[str, Any]:
    found = _run([q for _, q, _ in hits])
    tp = sum(1 for (_, _, expected), ids in zip(hits, found, strict=True) if expected in ids)
    fp_hits = sum(1 for (_, _, expected), ids in zip(hits, found, strict=True) if ids and expected not in ids)
    fp_non = sum(1 for ids in _run(non_hits) if ids)
    by_type: dict[str, list[int]] = {}
    for (kind, _, expected), ids in zip(hits, found, strict=True):
        by_type.setdefault(kind, []).append(expected in ids)
    id_queries = [
        (expected, ids) for (_, q, expected), ids in zip(hits, found, strict=True) if "identifier" in q
    ]
    return {
        "hit_queries": len(hits),
        "non_hit_queries": len(non_hits),
        "true_positives": tp,
        "false_positives_on_hits": fp_hits,
        "false_positives_on_non_hits": fp_non,
        "precision": tp / max(1, tp + fp_hits + fp_non),
        "recall": tp / max(1, len(hits)),
        "identifier_exact": sum(1 for e, ids in id_queries if ids == {e}) / max(1, len(id_queries)),
        "recall_by_type": {k: round(sum(v) / len(v), 3) for k, v in sorted(by_type.items()) if len(v) >= 3},
    }


def write_docs(text: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    start, end = "<!-- api:start -->", "<!-- api:end -->"
    current = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    block = f"{start}\n{text.strip()}\n{end}"
    if start in current and end in current:
        current = current[: current.index(start)] + block + current[current.index(end) + len(end) :]
    else:
        current = current.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(exist_ok=True)
    path.write_text(current, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--singles", type=int, default=300)
    parser.add_argument("--feed", type=int, default=300_000)
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--prepare", action="store_true", help="ANALYZE and flush the GIN pending list first")
    args = parser.parse_args()
    ensure_tables()
    if args.prepare:
        prepare()
    client = client_with_key()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT COUNT(*) FROM lists_subject), (SELECT COUNT(*) FROM lists_subjectname), "
            "(SELECT COUNT(*) FROM lists_listing), (SELECT COALESCE(MAX(seq), 0) FROM lists_change)"
        )
        subjects, names, listings, changes = cursor.fetchone()
    client.post("/api/v1/screen", {"queries": mixed_queries(50)}, content_type="application/json")  # warm up
    batch = bench_screen_batch(client, args.rounds)
    single = bench_screen_single(client, args.singles)
    check, recorded = bench_check(client, args.singles)
    check_pending, derived = bench_check_pending(client, args.singles)
    feed = bench_feed(client, args.feed)
    baseline = bench_baseline(client, args.singles)
    report = {
        "subjects": subjects,
        "names": names,
        "listings": listings,
        "changes": changes,
        "screen_queries_per_s": round(batch["queries_per_s"]),
        "screen_1000_seconds": round(batch["seconds_per_request"], 2),
        "screen_single_p95_ms": round(single, 1),
        "check_p95_ms": round(check, 1),
        "check_pending_p95_ms": round(check_pending, 1),
        "check_restricted": sum(outcome == "restricted" for outcome, _ in recorded),
        "check_pending_differs": sum(a != b for a, b in zip(recorded, derived, strict=True)),
        "checks": len(recorded),
        "feed_changes_per_s": round(feed),
        "baseline_get_agencies_p95_ms": round(baseline, 1),
        "load_average_1min": round(os.getloadavg()[0], 1),
    }
    if not args.skip_quality:
        report.update({k: round(v, 4) if isinstance(v, float) else v for k, v in quality().items()})
    print(json.dumps(report, indent=2))
    if args.write_docs:
        write_docs(render(report))


def render(r: dict) -> str:
    lines = [
        "## Integrators' API (issue 6) — `bench/api.py`",
        "",
        f"Database: {r['subjects']:,} subjects ({r['names']:,} name rows), {r['listings']:,} listings, "
        f"{r['changes']:,} changes (synthetic demo data). In-process Django test client on this 2-core machine "
        "(authentication, Redis quotas, validation, JSON and request logging included), one client.",
        "",
        "| Measure | Target | Result |",
        "|---|---|---|",
        f"| Screening throughput, 1,000-query requests (½ known names, ¼ identifiers, ¼ unknown names) "
        f"| ≥ 500 queries/s | {r['screen_queries_per_s']:,} queries/s ({r['screen_1000_seconds']} s per request) |",
        f"| Single-query screen p95 | ≤ 50 ms | {r['screen_single_p95_ms']} ms |",
        f"| Restriction check p95 ({r['check_restricted']} of {r['checks']} restricted) | ≤ 10 ms "
        f"| {r['check_p95_ms']} ms |",
        f"| The same checks while a recompute is pending (measures derived, not read) | ≤ 10 ms "
        f"| {r['check_pending_p95_ms']} ms, {r['check_pending_differs']} answers differ |",
        f"| Change feed read (pages of 10,000) | ≥ 20,000 changes/s | {r['feed_changes_per_s']:,} changes/s |",
        f"| (baseline: `GET agencies`, no work at all, p95) | | {r['baseline_get_agencies_p95_ms']} ms |",
        "",
        f"Load average at the end of the run: {r['load_average_1min']} on 2 cores — other benchmarks shared the "
        "machine, so latencies carry their queueing. The database is a clone of the demo database after "
        "`ANALYZE` and `gin_clean_pending_list` (`--prepare`; autovacuum does both on a live system: without "
        "them the listings lookup of a 1,000-query screen picked a 20 s plan and every bigram probe scanned "
        "140 pending pages). Most of a check's time is the framework (middleware, DRF, the Redis quota "
        "round trip, the test client: compare the `GET agencies` baseline); the check itself is three SQL "
        "round trips (subject by identifier, restrictions + listings + data version in one statement, and "
        "the log row written with `synchronous_commit` off). Under a load average of 4.7 (an earlier run "
        "while other benchmarks ran) the check p95 was 10.4 ms and screening 718 queries/s. "
        "The pending row is what a big publication or a new catalogue edition leaves until its "
        "restrictions are recorded: the same identifiers are then checked against restrictions derived "
        "from the listings and the catalogue (one more statement), and every answer is compared with "
        "the recorded one.",
    ]
    if "precision" in r:
        lines += [
            "",
            f"Screening quality at the default threshold ({DEFAULT_THRESHOLD}) on the sample files in `bench/data/`: "
            "the listed companies and the organisation name/USCC pairs are loaded as subjects on top of the "
            f"demo data; {r['hit_queries']:,} hit queries are `search_eval_queries.csv` (names, short names, "
            "English names, names without legal form, USCCs exact / lower-case / full-width / spaced); "
            f"{r['non_hit_queries']} non-hit queries are the Jiangxi A-grade taxpayer names (not loaded). "
            "A hit counts when the expected subject is among the candidates; a false positive is any "
            "candidate for a non-hit, or candidates without the expected subject.",
            "",
            "| Precision | Recall | Identifier queries answered exactly | FP on hits | FP on non-hits |",
            "|---|---|---|---|---|",
            f"| {r['precision']:.3f} | {r['recall']:.3f} | {r['identifier_exact']:.3f} "
            f"| {r['false_positives_on_hits']} | {r['false_positives_on_non_hits']} |",
            "",
            "Recall by query type: "
            + ", ".join(f"{k} {v:.3f}" for k, v in r["recall_by_type"].items())
            + ".",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
