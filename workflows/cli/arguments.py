"""argparse value types that reject bad flag values with a message naming the problem."""

from __future__ import annotations

import argparse
import datetime as dt


def _int_at_least(minimum: int, expected: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return parse


positive_int = _int_at_least(1, "a positive integer")
non_negative_int = _int_at_least(0, "an integer >= 0")


def _float_in(low: float, high: float, low_open: bool, high_open: bool, expected: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        if not (above and below):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return parse


positive_float = _float_in(0.0, float("inf"), True, True, "a number > 0")
non_negative_float = _float_in(0.0, float("inf"), False, True, "a number >= 0")
at_least_one = _float_in(1.0, float("inf"), False, True, "a number >= 1")
probability = _float_in(0.0, 1.0, True, False, "a number in (0, 1]")
share_below_one = _float_in(0.0, 1.0, False, True, "a number in [0, 1)")


def read_parquet_flag(flag: str, path):
    """The Parquet file or directory a flag names, as an Arrow table; a missing or unreadable
    one is a ConfigError naming the flag."""
    import pyarrow.parquet as pq

    from recsys.errors import ConfigError

    if not path.exists():
        raise ConfigError(f"{flag} {path} does not exist")
    try:
        return pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable input is named, with the reason
        raise ConfigError(f"{flag} {path} is not readable Parquet: {exc}") from None


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def iso_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2024-05-31, got {text!r}") from None


def iso_datetime(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO-8601 time like 2026-11-01T00:00:00, got {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
