"""Search quality: recall@1, recall@5 and MRR per query type over real company names.

Loads bench/data/listed_company_names.csv (full name; short names raw, clean and extended as
aliases; former short names; English name) and bench/data/org_name_identifier_pairs.csv (name and
USCC or legacy number) as subjects into a fresh database, runs every query of
bench/data/search_eval_queries.csv through `lists.search.query.search_subjects` and writes the
results to docs/benchmarks.md (section search-quality). The data files are copies of
../shared/data/samples (see bench/data/README.md for their sources).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/xy_search_quality DJANGO_DEBUG=1 \\
        .venv/bin/python bench/search_quality.py [--no-write] [--without-short-names]

--without-short-names is a stress test, not the benchmark: stock short names (深物业A for
深圳市物业发展(集团)股份有限公司) are abbreviations no matching rule can derive, and the SSE rows
carry English in their "full_name_cn" column, so without the short names those queries fail.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _db import create_schema, ensure_database, setup_django  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/xy_search_quality"
IDENTIFIER_TYPES = {"uscc_exact", "uscc_lowercase", "uscc_fullwidth", "uscc_with_spaces"}
TARGETS = {  # query type -> (metric, target)
    "identifier": ("recall@1", 1.0),
    "org_full_name": ("recall@1", 0.99),
    "short_name_raw": ("recall@5", 0.95),
    "short_name_clean": ("recall@5", 0.95),
    "short_name_extended": ("recall@5", 0.95),
    "full_name_without_legal_form": ("recall@5", 0.95),
    "former_short_name": ("recall@5", 0.95),
    "english_name": ("recall@5", 0.90),
}


def _rows(name: str) -> list[dict[str, str]]:
    with open(DATA / name, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def subject_specs(*, short_names: bool = True) -> dict[str, dict[str, object]]:
    """Return subject fields by evaluation key (SZSE:000001, ID:9123…)."""
    specs: dict[str, dict[str, object]] = {}
    for row in _rows("listed_company_names.csv"):
        short = [row["short_name_raw"], row["short_name_clean"], row["short_name_ext"]] if short_names else []
        specs[f"{row['exchange']}:{row['code']}"] = {
            "name": row["full_name_cn"],
            "aliases": list(dict.fromkeys(s for s in short if s.strip())),
            "former_names": [
                n
                for n in (row["former_full_name_cn"], row["former_short_name"] if short_names else "")
                if n.strip()
            ],
            "name_en": row["english_name"],
        }
    for row in _rows("org_name_identifier_pairs.csv"):
        key, identifier = f"ID:{row['identifier']}", row["identifier"].strip().upper()
        if key in specs:  # listed twice: keep a second spelling as a former name
            if row["name"] != specs[key]["name"]:
                specs[key]["former_names"].append(row["name"])  # type: ignore[attr-defined]
            continue
        is_uscc = row["id_kind"] == "uscc18"
        specs[key] = {
            "name": row["name"],
            "aliases": [],
            "former_names": [],
            "name_en": "",
            "uscc": identifier if is_uscc else None,
            "org_code": identifier[8:17] if is_uscc else "",
            "legacy_ids": [] if is_uscc else [identifier],
        }
    return specs


def load_subjects(specs: dict[str, dict[str, object]]) -> dict[int, str]:
    """Create the subjects and their name rows; return evaluation keys by subject id."""
    from lists.models import Subject, SubjectName, SubjectType
    from lists.services.subjects import NAME_COLUMNS, name_rows

    subjects = Subject.objects.bulk_create(
        [Subject(subject_type=SubjectType.LEGAL_PERSON, **fields) for fields in specs.values()]  # type: ignore[arg-type]
    )
    names = []
    for subject in subjects:
        rows = name_rows(
            subject.pk,
            name=subject.name,
            aliases=subject.aliases,
            former_names=subject.former_names,
            name_en=subject.name_en,
        )
        names += [SubjectName(**dict(zip(NAME_COLUMNS, row, strict=True))) for row in rows]
    SubjectName.objects.bulk_create(names, batch_size=2000)
    return {subject.pk: key for subject, key in zip(subjects, specs, strict=True)}


def evaluate(
    keys: dict[int, str],
) -> tuple[dict[str, dict[str, float]], list[tuple[str, str, str, list[str]]]]:
    """Run every evaluation query; return metrics by query type and the misses at 5."""
    from lists.search.query import SearchFilters, search_subjects

    ranks: dict[str, list[int | None]] = defaultdict(list)
    misses = []
    started = time.monotonic()
    for row in _rows("search_eval_queries.csv"):
        result = search_subjects(row["query"], filters=SearchFilters(status="all"), per_page=20)
        found = [keys.get(hit.subject.pk, "") for hit in result.hits]
        rank = found.index(row["expected_key"]) + 1 if row["expected_key"] in found else None
        query_type = "identifier" if row["query_type"] in IDENTIFIER_TYPES else row["query_type"]
        for group in (query_type, row["query_type"]) if query_type != row["query_type"] else (query_type,):
            ranks[group].append(rank)
        if rank is None or rank > 5:
            misses.append((row["query_type"], row["query"], row["expected_key"], found[:3]))
    elapsed = time.monotonic() - started
    metrics = {
        group: {
            "n": len(values),
            "recall@1": sum(r == 1 for r in values) / len(values),
            "recall@5": sum(r is not None and r <= 5 for r in values) / len(values),
            "mrr": sum(1 / r for r in values if r) / len(values),
        }
        for group, values in ranks.items()
    }
    metrics["_all"] = {
        "seconds": elapsed,
        "n": sum(len(v) for k, v in ranks.items() if k not in IDENTIFIER_TYPES),
    }
    return metrics, misses


def render(metrics: dict[str, dict[str, float]], subjects: int, misses: list) -> str:  # type: ignore[type-arg]
    lines = [
        "## Search quality (bench/search_quality.py)",
        "",
        f"{subjects} subjects from `bench/data/listed_company_names.csv` and "
        "`bench/data/org_name_identifier_pairs.csv`; every query of `bench/data/search_eval_queries.csv` "
        "through `lists.search.query.search_subjects` (status filter `all`, 20 hits). "
        f"{int(metrics['_all']['n'])} queries in {metrics['_all']['seconds']:.1f} s.",
        "",
        "| query type | n | recall@1 | recall@5 | MRR | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for group in sorted(k for k in metrics if not k.startswith("_")):
        m = metrics[group]
        target = TARGETS.get(group)
        met = "" if target is None else ("yes" if m[target[0]] >= target[1] else "**no**")
        target_text = "" if target is None else f"{target[0]} ≥ {target[1]:.0%}"
        indent = "  ↳ " if group in IDENTIFIER_TYPES else ""
        lines.append(
            f"| {indent}{group} | {int(m['n'])} | {m['recall@1']:.1%} | {m['recall@5']:.1%} | "
            f"{m['mrr']:.3f} | {target_text} | {met} |"
        )
    lines += ["", f"Misses at 5: {len(misses)}."]
    for query_type, query, expected, found in misses[:15]:
        lines.append(f"- `{query_type}` {query} → expected {expected}, got {', '.join(found) or 'nothing'}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print, do not update docs/benchmarks.md")
    parser.add_argument(
        "--without-short-names",
        action="store_true",
        help="stress test: load no short or former short names, so they must match the full name",
    )
    args = parser.parse_args()
    url = os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    os.environ.setdefault("DJANGO_DEBUG", "1")
    ensure_database(url, fresh=True)
    setup_django()
    create_schema()
    specs = subject_specs(short_names=not args.without_short_names)
    keys = load_subjects(specs)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    metrics, misses = evaluate(keys)
    text = render(metrics, len(specs), misses)
    print(text)
    if not args.no_write:
        from report import write_section

        write_section("search-quality", text)


if __name__ == "__main__":
    main()
