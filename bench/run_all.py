"""Run every benchmark, each on its own database named after DATABASE_URL's, never the app's own.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/xinyong .venv/bin/python bench/run_all.py [--subjects N] [--rows N]

Databases used (created or replaced): <name>_bench_demo (seed_demo, then search latency, the API
and the lifecycle copy <name>_bench_lifecycle), <name>_bench_quality, <name>_bench_ingest.
Results go to docs/benchmarks.md. `make bench` runs this against the stack's database server.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from _db import ensure_database

ROOT = Path(__file__).resolve().parent.parent


def database_url(base: str, suffix: str) -> str:
    """Return `base` with its database name followed by `suffix`."""
    parts = urlsplit(base)
    return parts._replace(path=f"{parts.path}_{suffix}").geturl()


def run(script: str, url: str, *args: str) -> None:
    """Run one benchmark script with DATABASE_URL set; stop at the first failure."""
    print(f"== {script} {' '.join(args)} on {urlsplit(url).path.lstrip('/')}", flush=True)
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run([sys.executable, *script.split(), *args], cwd=ROOT, env=env, check=True)  # noqa: S603


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", default="1000000", help="demo subjects for the shared database")
    parser.add_argument("--rows", default="1000000", help="rows of the ingest benchmark's file")
    args = parser.parse_args()
    base = os.environ["DATABASE_URL"]
    demo, ingest = database_url(base, "bench_demo"), database_url(base, "bench_ingest")
    run("bench/seed_demo.py", demo, "--subjects", args.subjects)
    run("bench/search_quality.py", database_url(base, "bench_quality"))
    run("bench/search_latency.py", demo)
    run(
        "bench/lifecycle.py",
        demo,
        "--database",
        urlsplit(ingest).path.lstrip("/").replace("ingest", "lifecycle"),
    )
    run("bench/api.py", demo, "--prepare", "--write-docs")
    ensure_database(ingest, fresh=True)
    run("manage.py migrate --verbosity 0", ingest)
    run("manage.py load_reference", ingest)
    run("bench/ingest.py", ingest, "--rows", args.rows)


if __name__ == "__main__":
    main()
