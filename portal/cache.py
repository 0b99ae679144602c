"""A Redis cache that fails open: while Redis is unreachable, reads miss and writes do nothing.

Django's RedisCache raises on connection errors, so a Redis outage would turn every page that
reads a cached value into a 500. The cache only ever holds what can be recomputed (statistics,
page fragments) or soft limits, so missing it is slower, never wrong. API quotas do not go
through here: portal/api/throttling.py counts in Redis directly and fails closed with a 503.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import redis
from django.core.cache.backends.redis import RedisCache

logger = logging.getLogger(__name__)
# BusyLoadingError (Redis replaying its append-only file after a restart) is a ConnectionError.
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)
Method = TypeVar("Method", bound=Callable[..., Any])


def _fail_open(fallback: Callable[..., Any]) -> Callable[[Method], Method]:
    """Return a decorator that logs an unreachable Redis and answers fallback(*args) instead."""

    def decorate(method: Method) -> Method:
        @wraps(method)
        def wrapper(self: RedisCache, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except UNREACHABLE as exc:
                logger.warning("cache unreachable, %s skipped: %s", method.__name__, exc)
                return fallback(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _default(key: Any, default: Any = None, version: Any = None) -> Any:
    return default


class FailOpenRedisCache(RedisCache):
    """Django's RedisCache, except that an unreachable Redis reads as a miss and ignores writes."""

    get = _fail_open(_default)(RedisCache.get)
    get_many = _fail_open(lambda *a, **k: {})(RedisCache.get_many)
    has_key = _fail_open(lambda *a, **k: False)(RedisCache.has_key)
    set = _fail_open(lambda *a, **k: None)(RedisCache.set)
    set_many = _fail_open(lambda *a, **k: [])(RedisCache.set_many)
    # add() doubles as a lock (lists/services/statistics.py): "not acquired" keeps the caller on
    # its stale-but-safe path rather than stampeding the database.
    add = _fail_open(lambda *a, **k: False)(RedisCache.add)
    touch = _fail_open(lambda *a, **k: False)(RedisCache.touch)
    delete = _fail_open(lambda *a, **k: False)(RedisCache.delete)
    delete_many = _fail_open(lambda *a, **k: None)(RedisCache.delete_many)
    # Soft counters (public case filing, failed staff sign-ins) stop counting during an outage:
    # refusing every citizen and locking out every staff member would be worse.
    incr = _fail_open(lambda *a, **k: 0)(RedisCache.incr)
