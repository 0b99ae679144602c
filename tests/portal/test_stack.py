"""scripts/stack.py: the embedded PostgreSQL and Redis behind `make run` and `make test`."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dj_database_url
import psycopg
import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
STACK_PATH = ROOT / "scripts" / "stack.py"


def _load_stack():
    spec = importlib.util.spec_from_file_location("xinyong_stack", STACK_PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


stack = _load_stack()


def stack_env(data_dir: Path) -> dict[str, str]:
    """Return an environment in which stack.py must start its own servers in data_dir."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    return {**env, "XINYONG_DATA_DIR": str(data_dir)}


def is_running(pid: int) -> bool:
    return stack.proc_start_time(pid) is not None


def test_users_that_died_without_leaving_are_forgotten(tmp_path):
    embedded = stack.Embedded(tmp_path)
    dead = subprocess.Popen(["true"])
    dead.wait()
    with embedded.state() as state:
        state["users"] = [[dead.pid, 1], [os.getpid(), 0]]  # the second: a reused PID
        embedded.join(state)
        assert state["users"] == [[os.getpid(), stack.proc_start_time(os.getpid())]]
        assert embedded.leave(state) is True


def test_a_stale_postmaster_pid_file_is_removed(tmp_path):
    embedded = stack.Embedded(tmp_path)
    embedded.pg_dir.mkdir()
    # A crash left the file behind and the PID now belongs to something else (here: us).
    (embedded.pg_dir / "postmaster.pid").write_text(f"{os.getpid()}\n{embedded.pg_dir}\n1\n5432\n")
    assert embedded.postmaster() is None
    assert not (embedded.pg_dir / "postmaster.pid").exists()


def test_redis_info_is_empty_when_nothing_answers():
    assert stack.redis_info(stack.free_port()) == {}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("stack")


@pytest.mark.slow
def test_services_start_answer_and_stop_with_their_last_user(data_dir):
    with stack.services({}, redis_db=3, data_dir=data_dir) as env:
        config = dj_database_url.parse(env["DATABASE_URL"])
        assert (config["HOST"], config["NAME"], config["USER"]) == ("127.0.0.1", "xinyong", "postgres")
        with psycopg.connect(env["DATABASE_URL"]) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("xinyong",)
        assert env["REDIS_URL"].endswith("/3")
        assert redis.Redis.from_url(env["REDIS_URL"]).ping()
        # Another process finds them running, uses them and leaves them to us.
        other = subprocess.run(
            [sys.executable, STACK_PATH, "exec", "sh", "-c", 'echo "$DATABASE_URL"'],
            env=stack_env(data_dir),
            capture_output=True,
            text=True,
            check=True,
        )
        assert env["DATABASE_URL"] in other.stdout.splitlines()
        assert redis.Redis.from_url(env["REDIS_URL"]).ping()
        postgres_pid = stack.Embedded(data_dir).postmaster()[0]
        redis_pid = int(redis.Redis.from_url(env["REDIS_URL"]).info("server")["process_id"])
    assert postgres_pid and not is_running(postgres_pid)
    assert not is_running(redis_pid)


@pytest.mark.slow
def test_servers_left_by_a_killed_user_are_taken_over_and_stopped(data_dir):
    holder = subprocess.Popen(
        [sys.executable, STACK_PATH, "services"],
        env=stack_env(data_dir),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert holder.stdout
    exports = 0
    while exports < 2:  # `services` prints the two URLs once both servers answer
        line = holder.stdout.readline()
        assert line, "stack.py services exited early"
        exports += line.startswith("export ")
    postgres_pid = stack.Embedded(data_dir).postmaster()[0]
    redis_pid = json.loads((data_dir / "stack.json").read_text())["redis_pid"]
    holder.send_signal(signal.SIGKILL)  # no chance to clean up
    holder.wait()
    assert is_running(postgres_pid) and is_running(redis_pid)

    subprocess.run([sys.executable, STACK_PATH, "exec", "true"], env=stack_env(data_dir), check=True)
    deadline = time.monotonic() + 10
    while (is_running(postgres_pid) or is_running(redis_pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not is_running(postgres_pid)
    assert not is_running(redis_pid)
