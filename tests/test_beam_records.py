import datetime as dt

import pytest

from recsys.data.records import (
    BadRecord,
    Event,
    Item,
    order_key,
    parse_event,
    parse_item,
    to_micros,
)

UTC = dt.timezone.utc
ROW = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "event_type": "watch",
       "timestamp": dt.datetime(2026, 1, 1, tzinfo=UTC), "watch_time_s": 12.0}


def test_parse_event_types_everything():
    event = parse_event(ROW)
    assert event == Event("e1", "u1", "i1", "watch", 1767225600000000, watch_time_s=12.0)


@pytest.mark.parametrize("override, reason", [
    ({"user_id": None}, "missing required field 'user_id'"),
    ({"item_id": "  "}, "missing required field 'item_id'"),
    ({"event_type": "teleport"}, "unknown event_type 'teleport'"),
    ({"timestamp": None}, "missing required field 'timestamp'"),
    ({"timestamp": dt.datetime(2026, 1, 1)}, "timestamp: naive datetime"),
    ({"timestamp": "2026-01-01"}, "timestamp: expected a timestamp, got '2026-01-01'"),
    ({"watch_time_s": -1.0}, "watch_time_s must be a finite number >= 0, got -1.0"),
    ({"dwell_time_s": "long"}, "dwell_time_s: expected a number, got 'long'"),
    ({"rating": float("nan")}, "rating: expected a finite number"),
    ({"user_id": 7}, "user_id: expected a string, got 7"),
])
def test_parse_event_rejects_with_reason(override, reason):
    with pytest.raises(BadRecord) as err:
        parse_event({**ROW, **override})
    assert reason in str(err.value)


def test_parse_item():
    item = parse_item({"item_id": "i1", "category": "news", "tags": ["a"], "created_at": 5,
                       "duration_s": 30.0})
    assert item == Item("i1", "news", None, ("a",), 5, 30.0)
    with pytest.raises(BadRecord, match="tags: expected a list of strings"):
        parse_item({"item_id": "i1", "tags": "a|b"})


def test_to_micros_accepts_ints_and_aware_datetimes_only():
    assert to_micros(dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC), "t") == 1_000_000
    assert to_micros(42, "t") == 42
    with pytest.raises(BadRecord):
        to_micros(True, "t")


def test_order_key_is_time_then_natural_id_order():
    events = [Event(f"ml-1-{m}", "1", str(m), "rating", 100) for m in (10, 2, 1)]
    assert [e.event_id for e in sorted(events, key=order_key)] == ["ml-1-1", "ml-1-2", "ml-1-10"]
