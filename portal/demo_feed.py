"""A synthetic agency feed the portal serves itself, so demo sources have something to sync.

Only with DEBUG or DEMO_FEED_ENABLED. Every record is invented (名称 starts with 演示 "demo"),
deterministic for a given time window: every ten minutes one record joins and the oldest leaves,
so each scheduled snapshot sync visibly adds one listing and removes one.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from stdnum.cn import uscc

from lists.models import CreditList

PAGE_SIZE = 20
WINDOW = 40  # records in the feed at any time
SHIFT_MINUTES = 10
CITIES = ("北京", "上海", "深圳", "杭州", "成都", "武汉", "西安", "南京")
TRADES = ("华盛", "鑫源", "泰恒", "宏远", "瑞丰", "嘉禾", "聚德", "永安", "金昌", "博创")
INDUSTRIES = ("科技", "贸易", "建筑工程", "食品", "物流", "医药", "机械设备")


def demo_feed(request: HttpRequest, list_code: str) -> JsonResponse:
    """Serve one JSON page of the demo feed of a list (`?page=N`, `?generation=N` to pin time)."""
    if not (settings.DEBUG or getattr(settings, "DEMO_FEED_ENABLED", False)):
        raise Http404("the demo feed is off")
    credit_list = get_object_or_404(CreditList, code=list_code)
    generation = _int(request.GET.get("generation"), _generation(timezone.now()))
    pages = -(-WINDOW // PAGE_SIZE)
    page = min(max(_int(request.GET.get("page"), 1), 1), pages)
    numbers = range(generation + (page - 1) * PAGE_SIZE, generation + min(page * PAGE_SIZE, WINDOW))
    body: dict[str, Any] = {
        "list": credit_list.code,
        "synthetic": True,
        "page": page,
        "total_pages": pages,
        "results": [demo_record(credit_list.code, n) for n in numbers],
    }
    if page < pages:
        body["next"] = f"?page={page + 1}&generation={generation}"
    return JsonResponse(body, json_dumps_params={"ensure_ascii": False})


def demo_record(list_code: str, n: int) -> dict[str, str]:
    """Return synthetic record number `n` of a list; the same inputs always give the same record."""
    rng = random.Random(f"{list_code}:{n}")
    body = f"91{rng.choice(('11', '31', '44', '33', '51'))}0000{rng.randrange(10**9):09d}"
    decided = dt.date(2025, 1, 1) + dt.timedelta(days=n % 300)
    return {
        "企业名称": f"演示{rng.choice(CITIES)}{rng.choice(TRADES)}{rng.choice(INDUSTRIES)}{n}有限公司",
        "统一社会信用代码": body + uscc.calc_check_digit(body),
        "文书号": f"演示决〔2025〕{n}号",
        "列入原因": "演示数据（虚构）Synthetic demo record",
        "决定日期": decided.isoformat(),
    }


def _generation(now: dt.datetime) -> int:
    return int(now.timestamp() // (SHIFT_MINUTES * 60)) % 100_000


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default
