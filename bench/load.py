"""Load test: 50 simulated users against gunicorn + Celery while a big batch publishes and a sync runs.

    .venv/bin/python bench/load.py                 # 60 s at 50 users, 100,000-row publish
    .venv/bin/python bench/load.py --duration 30   # a quicker run

It clones the 1,000,000-subject demo database (`CREATE DATABASE xy_load_bench TEMPLATE
xy_seed_bench`), starts `gunicorn portal.wsgi -w 4` with production settings on a free loopback
port and a Celery worker, then drives a mix of public searches, subject pages, API screening and
checks from threads with keep-alive `http.client` connections. In parallel it publishes a generated
CSV with `manage.py import_list TAX_MAJOR_VIOLATION … --mode incremental --publish` and runs
`manage.py seed_demo_sources` + `manage.py sync_source ADMIN_LICENCE`. Every process it starts is
stopped (by process group) and the clone is dropped at the end, also on error. Before the main
phase it runs short baseline phases (`--quiet-users 1,50`, `--quiet-duration 15`) without the
publish and the sync, to tell the server's capacity from the interference. Results go into
docs/benchmarks.md between `<!-- load:start -->` and `<!-- load:end -->`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv" / "bin"
PG_ADMIN = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc"]
HEADER = "| endpoint | requests | req/s | p50 ms | p95 ms | p99 ms | errors |"
ENDPOINTS = ("search", "subject", "screen", "check")
WEIGHTS = (40, 25, 15, 20)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def psql(sql: str) -> None:
    subprocess.run([*PG_ADMIN, sql], check=True, capture_output=True, text=True, timeout=300)


def psql_retrying(sql: str, *, attempts: int, pause: float, what: str) -> bool:
    """Run SQL that a lingering connection can make fail for a moment; return whether it ran."""
    for attempt in range(attempts):
        try:
            psql(sql)
            return True
        except subprocess.CalledProcessError as exc:
            print(f"{what} attempt {attempt + 1} failed: {exc.stderr.strip()}", flush=True)
            time.sleep(pause)
    return False


def clone_database(name: str, template: str) -> None:
    if not psql_retrying(
        f'CREATE DATABASE "{name}" TEMPLATE "{template}"', attempts=10, pause=3, what="clone"
    ):
        raise SystemExit(f"could not clone {template} (busy?)")


def stack_env(db_url: str, redis_url: str, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="portal.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="load-bench-" + os.urandom(16).hex(),
        UPLOAD_ENCRYPTION_KEY=os.urandom(32).hex(),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_SECURE_COOKIES="0",
        DJANGO_SECURE_SSL_REDIRECT="0",
        # The sync pulls from the portal's own synthetic feed, which production settings turn off.
        DEMO_FEED_ENABLED="1",
        DATABASE_URL=db_url,
        REDIS_URL=redis_url,
        XINYONG_DATA_DIR=str(Path(tempfile.gettempdir()) / f"xy-load-{port}"),
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_healthy(port: int, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited early; see its log")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("gunicorn did not answer /healthz")


def prepare(env: dict[str, str], csv_path: Path, rows: int) -> dict:
    """Create the API key, draw the request samples and write the batch file (Django in-process)."""
    os.environ.update(
        {k: env[k] for k in env if k.startswith(("DJANGO", "DATABASE", "REDIS", "UPLOAD", "XINYONG", "DEMO"))}
    )
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    import django  # noqa: PLC0415

    django.setup()
    from django.db import connection  # noqa: PLC0415
    from ingest import make_file  # noqa: PLC0415

    from agencies.models import ApiKey  # noqa: PLC0415
    from lists.models import Measure  # noqa: PLC0415
    from lists.services import checks  # noqa: PLC0415

    prefix, secret = ApiKey.new_secret()
    ApiKey.objects.create(
        name="bench/load.py",
        prefix=prefix,
        key_hash=ApiKey.hash_secret(secret),
        scopes=[ApiKey.Scope.SCREEN],
        rate_per_minute=10_000_000,
        quota_per_day=100_000_000,
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, name, uscc FROM lists_subject TABLESAMPLE SYSTEM (0.5) LIMIT 3000")
        subjects = cursor.fetchall()
    codes = [
        c for c in Measure.objects.values_list("code", flat=True).distinct() if checks.current_measure(c)
    ]
    connection.close()
    make_file(csv_path, rows)
    return {
        "key": secret,
        "ids": [s[0] for s in subjects],
        "names": [s[1] for s in subjects],
        "usccs": [s[2] for s in subjects if s[2]],
        "measures": codes,
    }


def search_query(rng: random.Random, samples: dict) -> str:
    kind = rng.random()
    if kind < 0.4:
        name = rng.choice(samples["names"])
        n = rng.randint(2, 4)
        start_at = rng.randint(0, max(0, len(name) - n))
        return name[start_at : start_at + n]
    if kind < 0.8:
        return rng.choice(samples["names"])
    return rng.choice(samples["usccs"])


def make_request(rng: random.Random, samples: dict) -> tuple[str, str, str, bytes | None, dict[str, str]]:
    endpoint = rng.choices(ENDPOINTS, WEIGHTS)[0]
    auth = {"Authorization": f"Bearer {samples['key']}"}
    if endpoint == "search":
        return endpoint, "GET", f"/search/?q={quote(search_query(rng, samples))}", None, {}
    if endpoint == "subject":
        return endpoint, "GET", f"/subjects/{rng.choice(samples['ids'])}/", None, {}
    if endpoint == "screen":
        queries = []
        for _ in range(rng.randint(1, 5)):
            if rng.random() < 0.3:
                queries.append({"identifier": rng.choice(samples["usccs"])})
            else:
                queries.append({"name": rng.choice(samples["names"])})
        body = json.dumps({"queries": queries}).encode()
        return endpoint, "POST", "/api/v1/screen", body, {**auth, "Content-Type": "application/json"}
    path = (
        f"/api/v1/check?identifier={rng.choice(samples['usccs'])}&measure={rng.choice(samples['measures'])}"
    )
    return endpoint, "GET", path, None, auth


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.samples: dict[str, list[str]] = defaultdict(list)

    def ok(self, endpoint: str, seconds: float) -> None:
        with self.lock:
            self.latency[endpoint].append(seconds)

    def error(self, endpoint: str, seconds: float, what: str) -> None:
        with self.lock:
            self.latency[endpoint].append(seconds)
            self.errors[endpoint] += 1
            if len(self.samples[endpoint]) < 5:
                self.samples[endpoint].append(what)


def user(port: int, samples: dict, deadline: float, rec: Recorder, seed: int, think: float = 0.0) -> None:
    rng = random.Random(seed)
    conn: http.client.HTTPConnection | None = None
    while time.monotonic() < deadline:
        if think:
            time.sleep(min(rng.uniform(0, 2 * think), max(0.0, deadline - time.monotonic())))
        endpoint, method, path, body, headers = make_request(rng, samples)
        started = time.perf_counter()
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            elapsed = time.perf_counter() - started
            if resp.status >= 400:
                rec.error(endpoint, elapsed, f"{resp.status} {method} {path[:80]}")
            else:
                rec.ok(endpoint, elapsed)
            if resp.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as exc:
            rec.error(endpoint, time.perf_counter() - started, f"{type(exc).__name__}: {exc} ({path[:60]})")
            if conn is not None:
                conn.close()
            conn = None
    if conn is not None:
        conn.close()


def drive(port: int, samples: dict, users: int, duration: float, rec: Recorder) -> float:
    """Run `users` threads for `duration` seconds; return the elapsed time."""
    started = time.monotonic()
    threads = [
        threading.Thread(target=user, args=(port, samples, started + duration, rec, 1000 + i), daemon=True)
        for i in range(users)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + 40)
    return time.monotonic() - started


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000


class Background(threading.Thread):
    """Run management commands one after another; record each one's time and exit code."""

    def __init__(self, cmds: list[list[str]], env: dict[str, str], logdir: Path, tag: str) -> None:
        super().__init__(daemon=True)
        self.cmds, self.env, self.logdir, self.tag = cmds, env, logdir, tag
        self.results: list[tuple[str, int | None, float]] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopped = False

    def run(self) -> None:
        for i, cmd in enumerate(self.cmds):
            if self.stopped:
                return
            started = time.monotonic()
            self.proc = start(cmd, self.env, self.logdir / f"{self.tag}-{i}.log")
            code = self.proc.wait()
            label = " ".join(Path(a).name if a.startswith("/") else a for a in cmd[2:])
            self.results.append((label, code, time.monotonic() - started))
            print(
                f"{self.tag}: {' '.join(cmd[2:])} -> exit {code} in {time.monotonic() - started:.1f} s",
                flush=True,
            )
            if code != 0:
                return

    def halt(self) -> None:
        self.stopped = True
        stop(self.proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=60)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--publish-wait", type=int, default=90, help="Extra seconds to wait for the publish")
    parser.add_argument("--template", default="xy_seed_bench")
    parser.add_argument("--database", default="xy_load_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/6")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--think", type=float, default=3.0, help="Mean pause between a user's requests (s)")
    parser.add_argument(
        "--quiet-users", default="1,50", help="Baseline phases before the main one, without publish or sync"
    )
    parser.add_argument("--quiet-duration", type=int, default=15, help="Seconds per baseline phase (0: none)")
    args = parser.parse_args()
    if "bench" not in args.database or args.database == args.template:
        raise SystemExit("the clone's name must contain 'bench' and differ from the template")
    args.users = min(args.users, 200)
    args.duration = min(args.duration, 600)
    port = free_port()
    db_url = f"postgres://postgres@127.0.0.1:5432/{args.database}"
    env = stack_env(db_url, args.redis_url, port)
    manage = [str(VENV / "python"), "manage.py"]
    procs: list[subprocess.Popen[bytes]] = []
    background: list[Background] = []
    created = ok = False
    with tempfile.TemporaryDirectory(prefix="xy-load-") as tmp:
        logdir = Path(tmp)
        try:
            clone_database(args.database, args.template)
            created = True
            subprocess.run([*manage, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=300)
            csv_path = logdir / f"publish-{args.rows}.csv"
            samples = prepare(env, csv_path, args.rows)
            print(f"samples: {len(samples['ids'])} subjects, measures {samples['measures'][:3]}…", flush=True)
            gunicorn = start(
                [str(VENV / "gunicorn"), "portal.wsgi", "-w", "4", "-b", f"127.0.0.1:{port}"],
                env,
                logdir / "gunicorn.log",
            )
            procs.append(gunicorn)
            procs.append(
                start(
                    [
                        str(VENV / "celery"),
                        "-A",
                        "portal",
                        "worker",
                        "-Q",
                        "celery,sync",
                        "-c",
                        "1",
                        "-l",
                        "WARNING",
                    ],
                    env,
                    logdir / "celery.log",
                )
            )
            wait_healthy(port, gunicorn)
            quiet: list[tuple[int, Recorder, float]] = []
            for n in [int(x) for x in args.quiet_users.split(",") if x] if args.quiet_duration else []:
                qrec = Recorder()
                qelapsed = drive(port, samples, min(n, 200), args.quiet_duration, qrec)
                quiet.append((n, qrec, qelapsed))
                print(f"quiet phase, {n} users:", flush=True)
                table(qrec, qelapsed)
            rec = Recorder()
            started = time.monotonic()
            deadline = started + args.duration
            users = [
                threading.Thread(target=user, args=(port, samples, deadline, rec, i, args.think), daemon=True)
                for i in range(args.users)
            ]
            for t in users:
                t.start()
            time.sleep(min(3, args.duration / 10))
            publish = Background(
                [
                    [
                        *manage,
                        "import_list",
                        "TAX_MAJOR_VIOLATION",
                        str(csv_path),
                        "--mode",
                        "incremental",
                        "--publish",
                    ]
                ],
                env,
                logdir,
                "publish",
            )
            sync = Background(
                [
                    [*manage, "seed_demo_sources", "--base-url", f"http://127.0.0.1:{port}"],
                    [*manage, "sync_source", "ADMIN_LICENCE"],
                ],
                env,
                logdir,
                "sync",
            )
            background += [publish, sync]
            for b in background:
                b.start()
            for t in users:
                t.join(args.duration + 40)
            elapsed = time.monotonic() - started
            for b in background:
                b.join(max(0, args.publish_wait - (time.monotonic() - deadline)))
            for b in background:
                if b.is_alive():
                    print(f"{b.tag} still running after the wait: stopping it", flush=True)
                    b.halt()
            ok = report(args, rec, elapsed, publish, sync, logdir, quiet)
        finally:
            for b in background:
                b.halt()
            for p in reversed(procs):
                stop(p)
            if created:
                drop = f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)'
                psql_retrying(drop, attempts=5, pause=2, what="drop")
    if not ok:
        raise SystemExit(1)


def report(
    args: argparse.Namespace,
    rec: Recorder,
    elapsed: float,
    publish: Background,
    sync: Background,
    logdir: Path,
    quiet: list[tuple[int, Recorder, float]],
) -> bool:
    rows, total, total_err = table(rec, elapsed)
    for ep, what in rec.samples.items():
        print(f"{ep} error samples: {what}", flush=True)
    quiet_lines: list[str] = []
    for n, qrec, qelapsed in quiet:
        qrows, qtotal, qerr = table(qrec, qelapsed)
        quiet_lines += [
            "",
            f"Before that, without the publish and the sync and with no think time (a closed loop: each "
            f"user sends its next request as soon as the last one is answered): {n} user(s) for {qelapsed:.0f} s.",
            "",
            HEADER,
            "|---|---:|---:|---:|---:|---:|---:|",
            *qrows,
            f"| **all** | {qtotal:,} | {qtotal / qelapsed:.1f} | | | | {qerr} |",
        ]

    def describe(bg: Background, name: str) -> str:
        if not bg.results:
            return f"{name}: did not finish within the run (stopped)"
        parts = [f"`{cmd}` exit {code} in {sec:.1f} s" for cmd, code, sec in bg.results]
        done = len(bg.results) == len(bg.cmds) and all(code == 0 for _, code, _ in bg.results)
        return f"{name}: {'finished' if done else 'did NOT finish'}: " + "; ".join(parts)

    pub, syn = describe(publish, "publish"), describe(sync, "sync")
    for line in (pub, syn):
        print(line, flush=True)
    for name in ("publish-0", "sync-0", "sync-1"):
        log = logdir / f"{name}.log"
        if log.exists():
            lines = log.read_text(errors="replace").splitlines()
            failed = any("Error" in line or "Traceback" in line for line in lines)
            print(f"--- {name}.log (tail)\n" + "\n".join(lines[-40 if failed else -4 :]), flush=True)
            if failed:
                kept = Path(tempfile.mkdtemp(prefix="xy-load-logs-"))
                for other in logdir.glob("*.log"):
                    shutil.copy(other, kept)
                print(f"logs kept in {kept}", flush=True)
    search = rec.latency.get("search", [])
    verdict = (
        f"Target: 0 errors (got {total_err}); public search p95 ≤ 200 ms at {args.users} users "
        f"(got {pct(search, 95):.0f} ms)."
        if search
        else "No search requests recorded."
    )
    body = "\n".join(
        [
            "## Load: 50 users on gunicorn while a batch publishes and a sync runs",
            "",
            f"`bench/load.py --duration {args.duration} --users {args.users} --rows {args.rows} --think {args.think:g}` on "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC: `gunicorn portal.wsgi -w 4` (DJANGO_DEBUG=0) and one Celery "
            f"worker (`-Q celery,sync -c 1`) on a clone of the 1,000,000-subject demo database, PostgreSQL and "
            f"Redis on the same 2-core machine (the load generator too, and other people's runs shared it). "
            f"{args.users} threads with keep-alive connections, "
            f"{'no think time' if not args.think else f'a think time of 0–{2 * args.think:g} s'}, for {elapsed:.0f} s; mix "
            "40 % search (2–4 character fragments, full names, USCCs), 25 % subject pages, 15 % screening "
            "(1–5 queries each), 20 % checks (USCC + a measure in force).",
            "",
            HEADER,
            "|---|---:|---:|---:|---:|---:|---:|",
            *rows,
            f"| **all** | {total:,} | {total / elapsed:.1f} | | | | {total_err} |",
            "",
            f"In parallel: {pub}; {syn}. Errors are responses ≥ 400 and connection exceptions.",
            *quiet_lines,
            "",
            verdict,
        ]
    )
    if not args.no_write:
        sys.path.insert(0, str(ROOT / "bench"))
        from report import write_section  # noqa: PLC0415

        write_section("load", body)
        print("wrote the load section of docs/benchmarks.md", flush=True)
    return total_err == 0 and "did NOT" not in pub + syn and "did not" not in pub + syn


def table(rec: Recorder, elapsed: float) -> tuple[list[str], int, int]:
    rows = []
    total = total_err = 0
    for ep, label in zip(
        ENDPOINTS,
        (
            "public search `/search/?q=`",
            "subject page `/subjects/<id>/`",
            "API `POST /api/v1/screen`",
            "API `GET /api/v1/check`",
        ),
        strict=True,
    ):
        lat = rec.latency.get(ep, [])
        if not lat:
            continue
        total += len(lat)
        total_err += rec.errors[ep]
        rows.append(
            f"| {label} | {len(lat):,} | {len(lat) / elapsed:.1f} | {pct(lat, 50):.0f} | {pct(lat, 95):.0f} | "
            f"{pct(lat, 99):.0f} | {rec.errors[ep]} |"
        )
        print(rows[-1], flush=True)
    return rows, total, total_err


if __name__ == "__main__":
    main()
