"""Time `seed_demo` on a fresh database and record it in docs/benchmarks.md.

DATABASE_URL=postgres://postgres@127.0.0.1:5432/xy_seed_bench .venv/bin/python bench/seed_demo.py --subjects 1000000
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

from _db import ensure_database, setup_django
from report import write_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=1_000_000)
    args = parser.parse_args()
    ensure_database(os.environ["DATABASE_URL"], fresh=True)
    setup_django()
    from _db import create_schema

    from lists.services.demo import seed_demo

    create_schema()
    started = time.monotonic()
    summary = seed_demo(subjects=args.subjects, seed=1)
    seconds = time.monotonic() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load = os.getloadavg()[0]
    write_section(
        "seed-demo",
        f"""
## Demo data: `seed_demo --subjects {args.subjects:,}`

`bench/seed_demo.py` on a fresh database ({platform.machine()}, {os.cpu_count()} cores, load average
{load:.1f} when it finished — other work shared the machine):

| subjects | listings | changes | restrictions | time | rate | peak memory |
|---:|---:|---:|---:|---:|---:|---:|
| {summary.subjects:,} | {summary.listings:,} | {summary.changes:,} | {summary.restrictions:,} | {seconds:.0f} s | {summary.subjects / seconds:,.0f} subjects/s | {peak_mb:.0f} MB |

Rows go in with COPY in chunks of 20,000; the big tables' secondary indexes are dropped first and
rebuilt once, and foreign-key triggers are off for the load when the role may (superuser), since the
rows only reference ids reserved in the same transaction.
""",
    )
    print(f"{summary.subjects} subjects in {seconds:.1f} s")


if __name__ == "__main__":
    main()
