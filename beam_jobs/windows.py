"""Time-sorted values with cheap window queries: the building block of the count features."""

from __future__ import annotations

from bisect import bisect_left
from typing import Generic, TypeVar

from recsys.data.records import US_PER_DAY

T = TypeVar("T")


class Timeline(Generic[T]):
    """Values at non-decreasing times; ``window(end, days)`` is those with
    ``end - days <= t < end``."""

    def __init__(self) -> None:
        self.times: list[int] = []
        self.values: list[T] = []

    def append(self, ts_us: int, value: T) -> None:
        self.times.append(ts_us)
        self.values.append(value)

    def window(self, end_us: int, days: int) -> list[T]:
        lo = bisect_left(self.times, end_us - days * US_PER_DAY)
        hi = bisect_left(self.times, end_us)
        return self.values[lo:hi]

    def count(self, end_us: int, days: int) -> int:
        return bisect_left(self.times, end_us) - bisect_left(self.times, end_us - days * US_PER_DAY)

    def before(self, end_us: int) -> int:
        return bisect_left(self.times, end_us)


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None
