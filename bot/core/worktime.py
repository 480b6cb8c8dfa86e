"""Working time: which moments are within working hours, and deadlines counted in them.

Working hours (``LIANHU_WORK_HOURS``, minutes of the local day) on working days
(``LIANHU_WORK_DAYS``, weekdays Monday=0). Public holidays and China's make-up working days
(调休) are not known here: a holiday on a working weekday counts as working time.

Pure date arithmetic in a given zone: the working hours are local times of local dates, and
the time counted is the seconds that really pass within them (Asia/Shanghai has had no
daylight saving since 1991, so every working day there is as long as the next).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MONDAY_TO_FRIDAY = frozenset(range(5))
EVERY_DAY = frozenset(range(7))


def parse_days(text: str) -> frozenset[int]:
    """Return the working days of ``Mon-Fri`` or ``Mon,Tue,Sat`` (ranges and lists mix).

    Raise ValueError for anything else, or for no day at all.
    """
    days: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        ends = part.split("-")
        if len(ends) > 2 or not all(e[:3] in WEEKDAYS and len(e) >= 3 for e in ends):
            raise ValueError("working days as Mon-Fri or Mon,Tue,Wed (English day names)")
        first, last = WEEKDAYS.index(ends[0][:3]), WEEKDAYS.index(ends[-1][:3])
        if last < first:
            raise ValueError(f"{part}: a range of days runs forward, such as Mon-Fri")
        days.update(range(first, last + 1))
    return frozenset(days)


def working(
    now: float, hours: tuple[int, int] | None, days: frozenset[int], zone: dt.tzinfo
) -> bool:
    """Return whether ``now`` falls within the working hours of a working day (always, without
    working hours)."""
    if hours is None:
        return True
    local = dt.datetime.fromtimestamp(now, zone)
    minute = local.hour * 60 + local.minute
    return local.weekday() in days and hours[0] <= minute < hours[1]


def add_working(
    start: float,
    seconds: float,
    hours: tuple[int, int],
    days: frozenset[int],
    zone: dt.tzinfo,
) -> float:
    """Return the moment ``seconds`` of working time after ``start``.

    Time outside working hours does not count: a start at night counts from the next
    working day's first minute; a deadline that uses a day up to its last minute falls due
    at the end of that day, not the next morning.
    """
    if not days:
        raise ValueError("no working days")
    left = max(seconds, 0.0)
    day = dt.datetime.fromtimestamp(start, zone).date()
    cursor = start
    while True:
        if day.weekday() in days:
            opens, closes = (_at(day, minute, zone) for minute in hours)
            cursor = max(cursor, opens)
            if cursor < closes:
                if left <= closes - cursor:
                    return cursor + left
                left -= closes - cursor
        day += dt.timedelta(days=1)


def _at(day: dt.date, minute: int, zone: dt.tzinfo) -> float:
    """Return the epoch time of ``minute`` of the local ``day`` (1440: the next midnight)."""
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=zone)
    return (midnight + dt.timedelta(minutes=minute)).timestamp()


__all__: Sequence[str] = ("EVERY_DAY", "MONDAY_TO_FRIDAY", "add_working", "parse_days", "working")
