"""Per-record checks of events and catalogue rows (the API and the stream worker)."""

from __future__ import annotations

import datetime as dt

from conftest import event
from recsys.data.schemas import EVENTS, ITEMS
from recsys.stream.records import ACCEPTED, DUPLICATE, REJECTED, check_records

NOW = dt.datetime(2026, 10, 2, tzinfo=dt.timezone.utc)


def test_each_record_gets_its_own_outcome():
    records = [event(event_id="a"), event(event_id="b", event_type="teleport"),
               ["not", "a", "mapping"], event(event_id="a"),
               {**event(event_id="c"), "colour": "red"},
               event(event_id="a", user_id="u2"), event(event_id="d", user_id=" ")]
    checked = check_records(records, EVENTS, now=NOW)
    assert [(o.status, o.reason) for o in checked.outcomes] == [
        (ACCEPTED, ""),
        (REJECTED, "unknown event_type 'teleport' (expected one of: impression, click, watch, "
                   "like, dislike, skip, share, rating)"),
        (REJECTED, "expected a JSON object with the events fields, got list"),
        (DUPLICATE, "an exact repeat of an earlier record in this batch"),
        (REJECTED, "unknown field(s) ['colour']; allowed: " + str(list(EVENTS.input_columns))),
        (REJECTED, "conflicting duplicate: event_id 'a' already appeared with different values "
                   "at input row 0"),
        (REJECTED, "missing required field 'user_id'"),
    ]
    assert checked.table.column("event_id").to_pylist() == ["a"]
    assert checked.outcomes[0].row == 0


def test_lake_owned_field_and_future_time_are_refused():
    records = [{**event(), "ingested_at": "2026-01-01T00:00:00Z"},
               event(event_id="f", timestamp="2026-10-02T03:00:00Z")]
    outcomes = check_records(records, EVENTS, now=NOW).outcomes
    assert outcomes[0].reason == "field 'ingested_at' is written by the lake; drop it"
    assert outcomes[1].status == REJECTED and "is in the future" in outcomes[1].reason


def test_items_and_empty_input():
    checked = check_records([{"item_id": "i9", "category": "news", "tags": ["a", "b"]},
                             {"item_id": "i8", "tags": "a,b"}], ITEMS, now=NOW)
    assert [o.status for o in checked.outcomes] == [ACCEPTED, REJECTED]
    assert checked.table.to_pylist()[0]["tags"] == ["a", "b"]
    empty = check_records([], EVENTS, now=NOW)
    assert empty.outcomes == [] and empty.table.num_rows == 0
    assert empty.table.schema.names == list(EVENTS.input_columns)
