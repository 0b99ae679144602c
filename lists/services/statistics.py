"""Aggregate listings for the statistics page and the directories, cached in Redis.

Counting over a million listings takes seconds, so the aggregates are computed at most once
per CACHE_SECONDS by whichever request finds the cache empty, and every other request reads
them from the cache.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from dateutil.relativedelta import relativedelta
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

CACHE_KEY = "lists:statistics:v1"
LOCK_KEY = "lists:statistics:v1:lock"
CACHE_SECONDS = 300  # how old the figures may get before a request recomputes them
KEEP_SECONDS = 24 * 3600  # how long a stale copy is served while one request recomputes
LOCK_SECONDS = 120
MONTHS = 12

PROVINCES = {
    "11": ("北京", "Beijing"), "12": ("天津", "Tianjin"), "13": ("河北", "Hebei"), "14": ("山西", "Shanxi"),
    "15": ("内蒙古", "Inner Mongolia"), "21": ("辽宁", "Liaoning"), "22": ("吉林", "Jilin"),
    "23": ("黑龙江", "Heilongjiang"), "31": ("上海", "Shanghai"), "32": ("江苏", "Jiangsu"),
    "33": ("浙江", "Zhejiang"), "34": ("安徽", "Anhui"), "35": ("福建", "Fujian"), "36": ("江西", "Jiangxi"),
    "37": ("山东", "Shandong"), "41": ("河南", "Henan"), "42": ("湖北", "Hubei"), "43": ("湖南", "Hunan"),
    "44": ("广东", "Guangdong"), "45": ("广西", "Guangxi"), "46": ("海南", "Hainan"), "50": ("重庆", "Chongqing"),
    "51": ("四川", "Sichuan"), "52": ("贵州", "Guizhou"), "53": ("云南", "Yunnan"), "54": ("西藏", "Tibet"),
    "61": ("陕西", "Shaanxi"), "62": ("甘肃", "Gansu"), "63": ("青海", "Qinghai"), "64": ("宁夏", "Ningxia"),
    "65": ("新疆", "Xinjiang"), "71": ("台湾", "Taiwan"), "81": ("香港", "Hong Kong"), "82": ("澳门", "Macao"),
}  # fmt: skip


@dataclass
class ListingStatistics:
    """Aggregates of in-force and ended listings; counts keyed by list id, province or month."""

    computed_at: dt.datetime
    in_force_by_list: dict[int, int] = field(default_factory=dict)
    last_change_by_list: dict[int, dt.datetime] = field(default_factory=dict)
    in_force_by_province: dict[str, int] = field(default_factory=dict)
    months: list[str] = field(default_factory=list)  # "2026-01", oldest first
    new_by_month: dict[str, int] = field(default_factory=dict)
    expired_by_month: dict[str, int] = field(default_factory=dict)
    repaired_by_month: dict[str, int] = field(default_factory=dict)

    @property
    def total_in_force(self) -> int:
        return sum(self.in_force_by_list.values())


def listing_statistics() -> ListingStatistics:
    """Return the cached aggregates; recompute them when older than CACHE_SECONDS.

    The copy is kept for a day, and when it turns stale only the request that wins the lock
    recomputes it, while concurrent requests keep serving the stale copy: a cold or expiring
    cache never sends a burst of full-table counts to the database.
    """
    stats = cache.get(CACHE_KEY)
    is_fresh = isinstance(stats, ListingStatistics) and (
        timezone.now() - stats.computed_at < dt.timedelta(seconds=CACHE_SECONDS)
    )
    if is_fresh or (isinstance(stats, ListingStatistics) and not cache.add(LOCK_KEY, 1, LOCK_SECONDS)):
        return stats
    try:
        stats = compute_listing_statistics()
        cache.set(CACHE_KEY, stats, KEEP_SECONDS)
    finally:
        cache.delete(LOCK_KEY)
    return stats


def compute_listing_statistics(*, today: dt.date | None = None) -> ListingStatistics:
    """Compute the aggregates from the database (slow on big tables: call through the cache)."""
    today = today or timezone.localdate()
    first = today.replace(day=1) - relativedelta(months=MONTHS - 1)
    stats = ListingStatistics(computed_at=timezone.now())
    stats.months = [f"{first + relativedelta(months=i):%Y-%m}" for i in range(MONTHS)]
    stats.in_force_by_list = dict(_rows(_IN_FORCE_BY_LIST))
    stats.last_change_by_list = dict(_rows(_LAST_CHANGE_BY_LIST))
    stats.in_force_by_province = dict(_rows(_IN_FORCE_BY_PROVINCE))
    stats.new_by_month = dict(_rows(_NEW_BY_MONTH, [first]))
    stats.expired_by_month = dict(_rows(_ENDED_BY_MONTH, ["expired", first]))
    stats.repaired_by_month = dict(_rows(_ENDED_BY_MONTH, ["repaired", first]))
    return stats


def clear_listing_statistics() -> None:
    """Drop the cached aggregates so the next request recomputes them."""
    cache.delete_many([CACHE_KEY, LOCK_KEY])


def _rows(sql: str, params: list[Any] | None = None) -> list[tuple[Any, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchall()


_IN_FORCE_BY_LIST = """
    SELECT credit_list_id, count(*) FROM lists_listing
    WHERE status IN ('active', 'disputed') GROUP BY credit_list_id
"""
_LAST_CHANGE_BY_LIST = "SELECT credit_list_id, max(created_at) FROM lists_change GROUP BY credit_list_id"
_IN_FORCE_BY_PROVINCE = """
    SELECT left(s.region_code, 2), count(*) FROM lists_listing l
    JOIN lists_subject s ON s.id = l.subject_id
    JOIN lists_creditlist cl ON cl.id = l.credit_list_id AND cl.is_public
    WHERE l.status IN ('active', 'disputed') GROUP BY 1
"""
_NEW_BY_MONTH = """
    SELECT to_char(COALESCE(l.published_on, l.decided_on), 'YYYY-MM'), count(*) FROM lists_listing l
    JOIN lists_creditlist cl ON cl.id = l.credit_list_id AND cl.is_public
    WHERE COALESCE(l.published_on, l.decided_on) >= %s GROUP BY 1
"""
_ENDED_BY_MONTH = """
    SELECT to_char(l.ended_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM'), count(*) FROM lists_listing l
    JOIN lists_creditlist cl ON cl.id = l.credit_list_id AND cl.is_public
    WHERE l.status = %s AND l.ended_at >= %s GROUP BY 1
"""
