"""Per-key rate limits and daily quotas, counted in Redis.

Every request does one atomic INCR per window (this minute, today) with an expiry, so counts
are shared by all web workers and vanish on their own. When Redis cannot be reached, keyed
calls fail closed with 503 (a key's quota is a contract we cannot check), while anonymous
reads of public data fail open (they are cheap and the same data is on the public site).
"""

from __future__ import annotations

import logging
import time
from functools import cache
from typing import Any

import redis
from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from ..security import client_ip
from .permissions import key_of

logger = logging.getLogger(__name__)
DAY = 86_400


class QuotaUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Quota service unavailable; keyed API calls are refused until it is back."
    default_code = "quota_unavailable"


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)


def redis_client() -> redis.Redis:
    """Return the Redis client for counters (REDIS_URL, read at call time so tests can switch)."""
    return _client(settings.REDIS_URL)


def count(windows: list[tuple[str, int, int]]) -> list[int]:
    """Add each (key, ttl, cost) counter's cost atomically; return the new totals."""
    pipe = redis_client().pipeline(transaction=True)
    for key, ttl, cost in windows:
        pipe.incrby(key, cost)
        pipe.expire(key, ttl)
    return [int(v) for v in pipe.execute()[::2]]


class KeyQuotaThrottle(BaseThrottle):
    """Allow a keyed request within its per-minute rate and daily quota; anonymous within a low rate."""

    def __init__(self) -> None:
        self.retry_after: int | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        key = key_of(request)
        now = int(time.time())
        minute, today = now // 60, now // DAY
        if key is None:
            ident = f"anon:{client_ip(request)}"
            limits = [(settings.XY_API_ANON_PER_MINUTE, 60 - now % 60)]
            windows = [(f"xy:api:rate:{ident}:{minute}", 61, 1)]
        else:
            ident = f"key:{key.pk}"
            limits = [(key.rate_per_minute, 60 - now % 60), (key.quota_per_day, DAY - now % DAY)]
            # The minute rate counts requests; the daily quota counts queries (a screen of 1,000 is 1,000).
            cost = getattr(view, "quota_cost", lambda r: 1)(request)
            windows = [
                (f"xy:api:rate:{ident}:{minute}", 61, 1),
                (f"xy:api:day:{ident}:{today}", DAY + 60, cost),
            ]
        try:
            totals = count(windows)
        except redis.RedisError:
            logger.exception("rate-limit counters unreachable")
            if key is None:
                return True
            raise QuotaUnavailable() from None
        for total, (limit, reset) in zip(totals, limits, strict=True):
            if total > limit:
                self.retry_after = max(1, reset)
                return False
        return True

    def wait(self) -> float | None:
        return self.retry_after
