"""Calendar months, as certificates count validity: the same day some months later."""

from __future__ import annotations

from calendar import monthrange
from datetime import date
from typing import TypeVar

Day = TypeVar("Day", bound=date)  # a date, or a datetime (which keeps its time)


def add_months(day: Day, months: int) -> Day:
    """The same day `months` later, or that month's last day when it has no such day."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return day.replace(year=year, month=month, day=min(day.day, monthrange(year, month)[1]))
