"""When a daily batch feature value changes: the times its rows are written for."""

from __future__ import annotations

from typing import Iterable

from recsys.data.records import US_PER_DAY
from recsys.features.tables import WINDOWS_DAYS


def day_of(ts_us: int) -> int:
    return ts_us // US_PER_DAY


def snapshot_days(event_days: Iterable[int], horizon_day: int,
                  windows: tuple[int, ...] = WINDOWS_DAYS) -> list[int]:
    """Days (as UTC midnights) at which windowed counts over events on ``event_days`` change.

    An event on day d enters every window at midnight d+1 and leaves window w at d+1+w, so
    values are written at exactly those midnights, never after ``horizon_day``. A row written
    at midnight S describes the events strictly before S.
    """
    days: set[int] = set()
    for d in set(event_days):
        days.add(d + 1)
        days.update(d + 1 + w for w in windows)
    return sorted(s for s in days if s <= horizon_day)
