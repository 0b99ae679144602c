"""Measure the batch pipeline on one big snapshot file: validate+diff, publish, re-upload.

    createdb -h 127.0.0.1 -U postgres xy_ingest_bench
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/xy_ingest_bench DJANGO_DEBUG=1
    .venv/bin/python manage.py migrate && .venv/bin/python manage.py load_reference
    .venv/bin/python bench/ingest.py --rows 1000000

It empties the published tables of the bench database first (it refuses any database whose
name does not contain "bench") and writes its results into docs/benchmarks.md between the
`<!-- ingest:start -->` and `<!-- ingest:end -->` markers.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import resource
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django  # noqa: E402
import psutil  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from stdnum.cn import uscc  # noqa: E402

from lists import tasks  # noqa: E402
from lists.models import Batch, CreditList, Listing, PendingRecompute  # noqa: E402
from lists.services import batches  # noqa: E402
from lists.services.batches.planning import prepare_publication  # noqa: E402
from lists.services.batches.publishing import INLINE_MEASURES_MAX  # noqa: E402

START, END = "<!-- ingest:start -->", "<!-- ingest:end -->"
TABLES = "lists_change, lists_restriction, lists_listing, lists_subjectname, lists_subject, lists_batchrow, lists_batch"


def make_file(path: Path, rows: int, *, shuffle: bool = False) -> None:
    """Write a snapshot CSV of `rows` distinct legal persons with valid codes (`shuffle`: in random order)."""
    order = list(range(rows))
    if shuffle:  # as an agency's export, sorted by date or region rather than by identifier
        random.Random(1).shuffle(order)
    with path.open("w", encoding="utf-8") as out:
        out.write("名称,统一社会信用代码,文书号,列入原因,决定日期,行政区划代码\n")
        for i in order:
            out.write(
                f"北京测试{i}科技有限公司,{identifier(i)},税稽罚〔2024〕{i}号,"
                f"虚开增值税专用发票,2024-{i % 12 + 1:02d}-{i % 28 + 1:02d},110105\n"
            )


def identifier(i: int) -> str:
    body = f"91110000{i:09d}"
    return body + uscc.calc_check_digit(body)


def counter_checks(rows: int, n: int = 200) -> tuple[int, float]:
    """Check n subjects of the file at a counter; return how many are restricted and the p95 in ms."""
    from lists.services.checks import check_restriction, find_subject

    restricted, times = 0, []
    for i in range(0, rows, max(1, rows // n)):
        started = time.perf_counter()
        result = check_restriction(subject=find_subject(identifier(i)), measure=None)
        times.append(time.perf_counter() - started)
        restricted += not result.allowed
    times.sort()
    return restricted, times[int(len(times) * 0.95)] * 1000


def peak_rss_mb() -> float:
    """Return the peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class MemorySampler(threading.Thread):
    """Sample the proportional set size (PSS) of this process and its children every 2 s.

    RSS would count the pages the forked workers share with this process once per process.
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_mb = 0.0

    def run(self) -> None:
        me = psutil.Process()
        while True:
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_full_info().pss
                except psutil.Error:
                    continue
            self.peak_mb = max(self.peak_mb, total / 1048576)
            time.sleep(2)


SAMPLER = MemorySampler()


def peak_child_rss_mb() -> float:
    """Return the peak resident memory of the largest row-building worker process so far."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def cpu_reference() -> float:
    """Return the best of three runs of a fixed CPU-bound query, in seconds.

    The publication is one PostgreSQL backend on one core; machines differ by 2x (seen between
    sessions), so results carry this reference to be compared across machines.
    """
    runs = []
    with connection.cursor() as cursor:
        for _ in range(3):
            started = time.perf_counter()
            cursor.execute("SELECT sum(i) FROM generate_series(1, 10000000) i")
            runs.append(time.perf_counter() - started)
    return min(runs)


def reset_database() -> None:
    name = connection.settings_dict["NAME"]
    if "bench" not in name:
        raise SystemExit(f"refusing to empty database {name!r}: its name must contain 'bench'")
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")  # noqa: S608


Result = tuple[float, float, float, float, float]  # seconds, peak RSS here, of a worker, PSS, load


def timed(label: str, results: dict[str, Result], fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    seconds = time.perf_counter() - started
    results[label] = (seconds, peak_rss_mb(), peak_child_rss_mb(), SAMPLER.peak_mb, os.getloadavg()[0])
    _, rss, child, pss, load = results[label]
    print(
        f"{label}: {seconds:.1f} s, peak RSS {rss:.0f} MB (workers {child:.0f} MB each), "
        f"peak PSS of all {pss:.0f} MB, load {load:.1f}",
        flush=True,
    )
    return value


def upload(credit_list: CreditList, payload: bytes) -> Batch:
    return batches.receive_batch(
        credit_list=credit_list,
        payload=payload,
        filename="bench.csv",
        mode="snapshot",
        origin="command",
        actor="bench",
    )


def run(
    rows: int, list_code: str, workdir: Path, *, restrictions: bool = True, shuffle: bool = False
) -> tuple[dict[str, Result], dict[str, float]]:
    # No worker in a benchmark: the service is called directly, as the task would.
    tasks.process_batch.delay_on_commit = lambda *args, **kwargs: None  # type: ignore[method-assign]
    tasks.apply_batch_measures.delay_on_commit = lambda *args, **kwargs: None  # type: ignore[method-assign]
    tasks.prepare_publication.delay_on_commit = lambda *args, **kwargs: None  # type: ignore[method-assign]
    reset_database()
    reference = cpu_reference()
    print(f"CPU reference (sum over generate_series(1, 10^7) in PostgreSQL): {reference:.2f} s", flush=True)
    credit_list = CreditList.objects.get(code=list_code)
    path = workdir / f"ingest-{rows}{'-shuffled' if shuffle else ''}.csv"
    make_file(path, rows, shuffle=shuffle)
    payload = path.read_bytes()
    results: dict[str, Result] = {}
    first = upload(credit_list, payload)
    first = timed(
        "validate + diff (first upload, all new)", results, batches.process_batch, batch_id=first.pk
    )
    assert first.counts["add"] == rows, first.counts
    # The task queued when validation commits, while the batch awaits approval.
    assert timed(
        "prepare the publication (task, while awaiting approval)", results, prepare_publication, first.pk
    )
    # An approver reads the preview first; by then the server has checkpointed the validation's
    # writes (checkpoint_timeout is 5 min). Without this the publish shares the 2 cores with that
    # checkpoint (65–70 s instead of 57–62 s in session 4's runs, docs/benchmarks.md's history).
    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")
    timed("publish", results, batches.publish_batch, batch_id=first.pk, waived_by="bench/ingest.py")
    facts: dict[str, float] = {}
    if rows > INLINE_MEASURES_MAX and restrictions:
        # Right after the commit, before the task: checks derive the batch's restrictions.
        facts["restricted_before_task"], facts["check_p95_before_task_ms"] = counter_checks(rows)
        pending = PendingRecompute.objects.get(batch=first)
        timed(
            "search names + restrictions (apply_batch_measures task, after commit)",
            results,
            tasks.apply_batch_measures,
            first.pk,
            "batch_removed",
            pending.pk,
        )
        facts["restricted_after_task"], facts["check_p95_after_task_ms"] = counter_checks(rows)
    again = upload(credit_list, payload)
    again = timed(
        "second upload of the same file (validate + diff)", results, batches.process_batch, batch_id=again.pk
    )
    assert again.counts["unchanged"] == rows, again.counts
    # A daily snapshot sync of an unchanged list publishes exactly this.
    timed(
        "publish of the second upload (no change)",
        results,
        batches.publish_batch,
        batch_id=again.pk,
        waived_by="bench/ingest.py",
    )
    facts.update(
        rows=rows,
        bytes=len(payload),
        listings=Listing.objects.filter(credit_list=credit_list).count(),
        shuffled=shuffle,
        cpu_reference_ms=round(reference * 1000),
    )
    # The latest first, as the service requires; the second one changed nothing.
    batches.rollback_batch(batch_id=again.pk, actor="bench/ingest.py")
    timed(
        "roll back the first upload (ends every listing it added)",
        results,
        batches.rollback_batch,
        batch_id=first.pk,
        actor="bench/ingest.py",
    )
    return results, facts


def _check_lines(facts: dict[str, float]) -> list[str]:
    if "restricted_before_task" not in facts:
        return []
    return [
        "",
        f"Counter checks of 200 subjects of the file (`check_restriction`, any measure): right after the "
        f"publication, before the restrictions task, {facts['restricted_before_task']} restricted, p95 "
        f"{facts['check_p95_before_task_ms']:.1f} ms (derived, since the task is pending); after the task, "
        f"{facts['restricted_after_task']} restricted, p95 {facts['check_p95_after_task_ms']:.1f} ms (recorded).",
    ]


def write_results(results: dict[str, Result], facts: dict[str, float], list_code: str) -> None:
    workers = settings.BATCH_WORKERS if facts["bytes"] >= settings.BATCH_PARALLEL_MIN_BYTES else 0
    lines = [
        START,
        "## Ingest: one snapshot file through the batch pipeline",
        "",
        f"`bench/ingest.py --rows {facts['rows']}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, list `{list_code}`, "
        f"a {facts['bytes'] / 1048576:.0f} MB UTF-8 CSV of {facts['rows']:,} legal persons"
        f"{' in random order' if facts['shuffled'] else ''}, rows built by "
        f"{workers or 'no'} worker processes; PostgreSQL on the same 2-core machine. The load average "
        "(1 min) is taken when each step ends. CPU reference of this machine: "
        f"`SELECT sum(i) FROM generate_series(1, 10000000) i` takes {facts['cpu_reference_ms'] / 1000:.2f} s "
        "(best of 3); a slower machine scales every step.",
        "",
        "| step | time | peak RSS of this process | of one worker process | peak PSS, all processes | load |",
        "|---|---:|---:|---:|---:|---:|",
        *[
            f"| {label} | {sec:.1f} s | {rss:.0f} MB | {child:.0f} MB | {pss:.0f} MB | {load:.1f} |"
            for label, (sec, rss, child, pss, load) in results.items()
        ],
        "",
        f"Published listings before the rollback: {facts['listings']:,}. Targets: validate+diff ≤ 60 s, "
        "publish ≤ 30 s, re-upload ≤ 30 s, peak memory ≤ 1 GB (for 1,000,000 rows; this process plus its workers, as PSS: "
        "RSS counts the pages a forked worker shares with this process in both; this process also holds "
        "the bench's own copy of the file).",
        *_check_lines(facts),
        END,
    ]
    doc = ROOT / "docs" / "benchmarks.md"
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    section = "\n".join(lines)
    if START in text and END in text:
        text = text[: text.index(START)] + section + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    doc.parent.mkdir(exist_ok=True)
    doc.write_text(text, encoding="utf-8")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="  %(message)s")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--list", default="TAX_MAJOR_VIOLATION")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp"))
    parser.add_argument(
        "--skip-restrictions", action="store_true", help="Do not run the after-commit restrictions task"
    )
    parser.add_argument(
        "--shuffle", action="store_true", help="Rows in random order rather than by identifier"
    )
    parser.add_argument("--no-write", action="store_true", help="Print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    SAMPLER.start()
    results, facts = run(
        args.rows, args.list, args.workdir, restrictions=not args.skip_restrictions, shuffle=args.shuffle
    )
    if not args.no_write:
        write_results(results, facts, args.list)


if __name__ == "__main__":
    main()
