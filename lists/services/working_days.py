"""Working days: weekdays, unless the holiday calendar (public holidays, make-up days) says otherwise."""

from __future__ import annotations

import datetime as dt

from ..models import Holiday


def is_working_day(day: dt.date, calendar: dict[dt.date, bool] | None = None) -> bool:
    """Return whether the day is a working day (weekdays, unless the calendar says otherwise)."""
    if calendar is None:
        calendar = _calendar(day, day)
    if day in calendar:
        return calendar[day]
    return day.weekday() < 5


def add_working_days(start: dt.date, n: int) -> dt.date:
    """Return the n-th working day after `start` (the start day itself never counts)."""
    # Even 10 consecutive days off (Spring Festival) fit comfortably in this window.
    calendar = _calendar(start, start + dt.timedelta(days=n * 2 + 30))
    day, left = start, n
    while left > 0:
        day += dt.timedelta(days=1)
        if is_working_day(day, calendar):
            left -= 1
    return day


def _calendar(first: dt.date, last: dt.date) -> dict[dt.date, bool]:
    rows = Holiday.objects.filter(date__range=(first, last)).values_list("date", "is_working_day")
    return dict(rows)
