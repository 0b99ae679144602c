"""Build and stage a big file's rows in worker processes while this process reads the file.

Building a row (cleaning, validating, hashing) costs tens of microseconds of Python, one core's
work: a million-row file took well over a minute in one process. Here the reader hands chunks
of raw records to forked workers, which build and stage the rows and COPY them into an
unlogged table over connections of their own, so rows never travel back. Duplicates across
chunks are found afterwards in SQL (diffing.insert_matched).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import re
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from typing import Any

import psycopg
from django.db import connection

from ...importers import ImportRejected, Record, RowBuilder, is_blank
from ...models import Batch
from .staging import ROW_COLUMNS, RowStager

RECORDS_PER_JOB = 2_000
_LONG_NUMBER = re.compile(r"\d{14,}[\dXx]?")
WAIT = 1.0  # seconds between checks that the workers are still alive


class WorkerFailed(RuntimeError):
    """A worker process stopped with an error; the message carries its traceback."""


def staging_table(batch: Batch) -> str:
    return f"batch_staging_{int(batch.pk)}"


def create_staging_table(table: str) -> None:
    """Create the unlogged table the workers fill, committed so that their sessions see it."""
    with _own_connection() as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")  # noqa: S608 - the name is built from an int
        conn.execute(f"CREATE UNLOGGED TABLE {table} AS SELECT * FROM lists_batchrow WITH NO DATA")  # noqa: S608


def drop_staging_table(table: str) -> None:
    # Through Django's connection: inside an outer transaction it holds a lock on the table from
    # reading it, which another session's DROP would wait for forever.
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")  # noqa: S608


def stage_in_workers(
    batch: Batch,
    builder: RowBuilder,
    records: Iterator[Record],
    *,
    workers: int,
    table: str,
    on_progress: Callable[[int, int], None],
) -> tuple[int, int]:
    """Stage every record into `table`; return (rows staged, last line number)."""
    context = multiprocessing.get_context("fork")  # workers inherit the builder, nothing is pickled
    jobs: Any = context.Queue(maxsize=workers * 2)
    results: Any = context.Queue()
    args = (jobs, results, builder, batch, _connection_params(), table)
    procs = [context.Process(target=_work, args=args, name=f"batch-{batch.pk}-{i}") for i in range(workers)]
    with _children_allowed():
        for proc in procs:
            proc.start()
    tally = _Tally(results, procs, on_progress)
    try:
        for job in _jobs(builder, records):
            tally.send(jobs, job)
        for _ in procs:
            tally.send(jobs, None)
        tally.wait_all()
    except BaseException:
        _shut_down(jobs, procs)
        raise
    _stop(procs, grace=5)
    if not tally.rows:
        raise ImportRejected("the file has no rows")
    return tally.rows, tally.last_line


@contextmanager
def _children_allowed() -> Iterator[None]:
    """Let a Celery pool process (marked daemonic) start the workers.

    multiprocessing refuses children to daemonic processes lest they outlive their parent;
    these are always joined or killed here, and exit by themselves if the parent dies.
    """
    config = multiprocessing.current_process()._config  # type: ignore[attr-defined]
    daemon = config.get("daemon")
    config["daemon"] = False
    try:
        yield
    finally:
        if daemon is not None:
            config["daemon"] = daemon


def _stop(procs: Sequence[BaseProcess], *, grace: float) -> None:
    for proc in procs:
        proc.join(timeout=grace)
        if proc.is_alive():
            proc.kill()
            proc.join()


def _shut_down(jobs: Any, procs: Sequence[BaseProcess]) -> None:
    """Let the live workers finish the jobs already queued and exit; kill those that do not."""
    for _ in procs:
        try:
            jobs.put(None, timeout=5 * WAIT)
        except queue.Full:  # nobody is reading: the workers are dead or stuck
            break
    _stop(procs, grace=10)
    jobs.cancel_join_thread()  # whatever is left unread must not block this process's exit


def _jobs(builder: RowBuilder, records: Iterator[Record]) -> Iterator[list[Record]]:
    """Yield records in chunks; the row limit is counted here, where the whole file is seen."""
    job: list[Record] = []
    for record in records:
        line_no, cells, problem = record
        if not problem and is_blank(cells):
            continue
        builder.count_row(line_no)
        job.append(record)
        if len(job) >= RECORDS_PER_JOB:
            yield job
            job = []
    if job:
        yield job


class _Tally:
    """Collect the workers' reports while jobs are sent; fail at once if one of them fails."""

    def __init__(
        self, results: Any, procs: Sequence[BaseProcess], on_progress: Callable[[int, int], None]
    ) -> None:
        self.results, self.procs, self.on_progress = results, procs, on_progress
        self.sent = self.done = self.rows = self.last_line = 0

    def send(self, jobs: Any, job: list[Record] | None) -> None:
        while True:
            self._drain(block=False)
            try:
                jobs.put(job, timeout=WAIT)
            except queue.Full:
                self._check_alive()
                continue
            self.sent += job is not None
            return

    def wait_all(self) -> None:
        while self.done < self.sent:
            self._drain(block=True)

    def _drain(self, *, block: bool) -> None:
        while True:
            try:
                rows, last_line, failure = self.results.get(block=block, timeout=WAIT if block else None)
            except queue.Empty:
                if block:
                    self._check_alive()
                return
            if failure:
                raise WorkerFailed(failure)
            self.done += 1
            self.rows += rows
            self.last_line = max(self.last_line, last_line)
            self.on_progress(self.rows, self.last_line)
            block = False

    def _check_alive(self) -> None:
        dead = [p for p in self.procs if p.exitcode not in (None, 0)]
        if dead:
            raise WorkerFailed(f"worker {dead[0].name} stopped with exit code {dead[0].exitcode}")


def _work(
    jobs: Any, results: Any, builder: RowBuilder, batch: Batch, params: dict[str, Any], table: str
) -> None:
    """Worker process: build, stage and COPY each job; report its count or the error."""
    parent = os.getppid()
    try:
        stager = RowStager(batch)
        copy_sql = f"COPY {table} ({', '.join(ROW_COLUMNS)}) FROM STDIN"  # noqa: S608
        with psycopg.connect(**params, autocommit=True) as conn:
            while (job := _next_job(jobs, parent)) is not None:
                rows = [stager.stage(row) for row in map(builder.build, job) if row is not None]
                with conn.cursor() as cursor, cursor.copy(copy_sql) as copy:
                    for row in rows:
                        copy.write_row(row)
                results.put((len(rows), stager.last_line, None))
    except BaseException:  # noqa: BLE001 - reported to the parent, which fails the batch
        # The report ends up in logs: no cell value that could be a personal ID number.
        results.put((0, 0, _LONG_NUMBER.sub("[number]", traceback.format_exc(limit=8))))


def _next_job(jobs: Any, parent: int) -> list[Record] | None:
    """Return the next job, or None when told to stop or when the parent has died (killed)."""
    while True:
        try:
            job: list[Record] | None = jobs.get(timeout=5 * WAIT)
            return job
        except queue.Empty:
            if os.getppid() != parent:
                return None


def _connection_params() -> dict[str, Any]:
    """Return psycopg arguments for the database Django uses (the test database in tests)."""
    connection.ensure_connection()
    info = connection.connection.info
    params: dict[str, Any] = info.get_parameters()  # all but the password
    if info.password:
        params["password"] = info.password
    return params


def _own_connection() -> psycopg.Connection[Any]:
    return psycopg.connect(**_connection_params(), autocommit=True)
