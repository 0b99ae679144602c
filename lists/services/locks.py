"""Session advisory locks: one runner per job key, released when the job ends or its connection dies."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

SYNC_LOCK_CLASS = 7_400_002
BATCH_LOCK_CLASS = 7_400_003


@contextmanager
def session_lock(lock_class: int, key: int, *, wait: bool) -> Iterator[bool]:
    """Hold the lock (lock_class, key) for the block; yield whether it was acquired.

    With `wait`, block until the current holder is done. A killed worker's connection drops its
    lock, so a redelivered task can always take over.
    """
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_lock(%s, %s::int)", [lock_class, key])
            acquired = True
        else:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s::int)", [lock_class, key])
            acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s::int)", [lock_class, key])
