"""Typed records the Beam jobs work on, and pure parsers from lake rows.

Guarantees: a parser either returns a fully typed record or raises :class:`BadRecord` with a
reason that names the field and the value; it never guesses. Timestamps are integer microseconds
since the UNIX epoch (UTC) from here on.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Mapping, NamedTuple

from recsys.data.schemas import EVENT_TYPES

US_PER_S = 1_000_000
US_PER_DAY = 86_400 * US_PER_S
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class BadRecord(ValueError):
    """A record the job cannot use; the message is the reason written to the dead letter."""


class Event(NamedTuple):
    event_id: str
    user_id: str
    item_id: str
    event_type: str
    ts_us: int
    watch_time_s: float | None = None
    dwell_time_s: float | None = None
    rating: float | None = None
    device: str | None = None
    country: str | None = None
    language: str | None = None
    request_id: str | None = None  # the answer of /v1/recommendations it was shown in
    position: int | None = None  # its 0-based slot in that answer


class Item(NamedTuple):
    item_id: str
    category: str | None = None
    language: str | None = None
    tags: tuple[str, ...] = ()
    created_us: int | None = None
    duration_s: float | None = None


def to_micros(value: Any, field: str) -> int:
    """datetime (aware), pandas Timestamp or int microseconds -> int microseconds."""
    if isinstance(value, bool):
        raise BadRecord(f"{field}: expected a timestamp, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise BadRecord(f"{field}: naive datetime {value.isoformat()} has no time zone")
        return (value - _EPOCH) // dt.timedelta(microseconds=1)
    raise BadRecord(f"{field}: expected a timestamp, got {value!r}")


def _text(row: Mapping[str, Any], field: str, required: bool = False) -> str | None:
    value = row.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise BadRecord(f"missing required field '{field}'")
        return None
    if not isinstance(value, str):
        raise BadRecord(f"{field}: expected a string, got {value!r}")
    return value


def _duration(row: Mapping[str, Any], field: str) -> float | None:
    value = row.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRecord(f"{field}: expected a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise BadRecord(f"{field} must be a finite number >= 0, got {value!r}")
    return float(value)


def parse_event(row: Mapping[str, Any]) -> Event:
    """A lake event row (or any mapping with the event schema's fields) -> Event."""
    event_type = _text(row, "event_type", required=True)
    if event_type not in EVENT_TYPES:
        raise BadRecord(f"unknown event_type {event_type!r}")
    if row.get("timestamp") is None:
        raise BadRecord("missing required field 'timestamp'")
    rating = row.get("rating")
    if rating is not None and (isinstance(rating, bool) or not isinstance(rating, (int, float))
                               or not math.isfinite(rating)):
        raise BadRecord(f"rating: expected a finite number, got {rating!r}")
    return Event(
        event_id=_text(row, "event_id", required=True),
        user_id=_text(row, "user_id", required=True),
        item_id=_text(row, "item_id", required=True),
        event_type=event_type,
        ts_us=to_micros(row["timestamp"], "timestamp"),
        watch_time_s=_duration(row, "watch_time_s"),
        dwell_time_s=_duration(row, "dwell_time_s"),
        rating=None if rating is None else float(rating),
        device=_text(row, "device"),
        country=_text(row, "country"),
        language=_text(row, "language"),
        request_id=_text(row, "request_id"),
        position=_position(row),
    )


def _position(row: Mapping[str, Any]) -> int | None:
    value = row.get("position")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRecord(f"position: expected a non-negative integer, got {value!r}")
    return value


def parse_item(row: Mapping[str, Any]) -> Item:
    """A lake item row -> Item."""
    tags = row.get("tags") or ()
    if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) for t in tags):
        raise BadRecord(f"tags: expected a list of strings, got {tags!r}")
    created = row.get("created_at")
    return Item(
        item_id=_text(row, "item_id", required=True),
        category=_text(row, "category"),
        language=_text(row, "language"),
        tags=tuple(tags),
        created_us=None if created is None else to_micros(created, "created_at"),
        duration_s=_duration(row, "duration_s"),
    )


def order_key(event: Event) -> tuple[int, int, str]:
    """Event order within a user: time, then natural id order (MovieLens: file order)."""
    return (event.ts_us, len(event.event_id), event.event_id)


def micros_to_datetime(us: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=us)
