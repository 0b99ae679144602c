"""Publication periods: when a listing ends if its source does not say."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

from dateutil.relativedelta import relativedelta

from ..models import CreditList


def default_expiry(credit_list: CreditList, decided_on: dt.date | None, severity: str = "") -> dt.date | None:
    """Return the default expiry from the list's period rule; None means until removed."""
    rule = credit_list.period_rule or {}
    if decided_on is None:
        return None
    if rule.get("kind") == "fixed" and rule.get("months"):
        return add_months(decided_on, int(rule["months"]))
    if rule.get("kind") == "tiered":
        tiers = rule.get("tiers") or {}
        # A record without a severity gets the list's declared default tier (for penalties the
        # 2025 plan's "general"); only a list without one falls back to the longest tier.
        tier = severity if severity in tiers else rule.get("default_tier", "")
        months = tiers.get(tier) or max((int(m) for m in tiers.values()), default=0)
        return add_months(decided_on, int(months)) if months else None
    return None


@lru_cache(maxsize=8192)
def add_months(day: dt.date, months: int) -> dt.date:
    """Return the day `months` later, clamped to the month's end (Jan 31 + 1 month = Feb 28)."""
    return day + relativedelta(months=months)
