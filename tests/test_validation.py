import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest
from conftest import event

from recsys.data.schemas import DECISIONS, EVENTS, ITEMS, USERS
from recsys.data.validation import validate
from recsys.errors import SchemaError


def test_valid_event_passes_typed(policy):
    result = validate([event()], EVENTS, policy)
    assert result.rejected == [] and result.duplicates == 0
    row = result.table.to_pylist()[0]
    assert row["timestamp"] == dt.datetime(2026, 10, 1, 12, tzinfo=dt.timezone.utc)
    assert row["position"] == 3 and row["dwell_time_s"] == 12.5 and row["watch_time_s"] is None
    assert result.table.schema.metadata == EVENTS.schema.metadata


BAD_EVENTS = [
    ("missing user", event(user_id=None), "missing required field 'user_id'"),
    ("empty event id", event(event_id="  "), "missing required field 'event_id'"),
    ("missing timestamp", event(timestamp=None), "missing required field 'timestamp'"),
    ("unknown type", event(event_type="purchase"), "unknown event_type 'purchase' (expected one "
                                                   "of: impression, click"),
    ("wrong type duration", event(dwell_time_s="long"), "dwell_time_s: expected a number, got "
                                                        "'long'"),
    ("wrong type id", event(item_id=4.5), "item_id: expected a string, got 4.5"),
    ("negative watch", event(event_type="watch", watch_time_s=-3.0),
     "watch_time_s must be a finite number >= 0, got -3.0"),
    ("negative dwell", event(dwell_time_s=-0.5), "dwell_time_s must be a finite number >= 0"),
    ("infinite dwell", event(dwell_time_s=float("inf")), "dwell_time_s must be a finite number"),
    ("future", event(timestamp="2026-11-05T00:00:00Z"), "timestamp 2026-11-05T00:00:00+00:00 is "
                                                        "in the future (later than 2026-11-01T13"),
    ("ancient", event(timestamp="1970-01-02T00:00:00Z"), "is before 1990-01-01"),
    ("naive time", event(timestamp="2026-10-01T12:00:00"), "no UTC offset"),
    ("rating without value", event(event_type="rating"), "a rating event needs a rating value"),
    ("rating out of range", event(event_type="rating", rating=11), "rating must lie in [0, 10]"),
    ("negative position", event(position=-1), "position must be >= 0, got -1"),
    ("fractional position", event(position=2.5), "position: expected an integer, got 2.5"),
    ("unknown device", event(device="fridge"), "unknown device 'fridge'"),
    ("bad country", event(country="usa"), "country 'usa' is not a valid code"),
    ("bad language", event(language="English"), "language 'English' is not a valid code"),
]


@pytest.mark.parametrize("record, reason", [(r, why) for _, r, why in BAD_EVENTS],
                         ids=[name for name, _, _ in BAD_EVENTS])
def test_bad_event_is_rejected_with_its_reason(policy, record, reason):
    good = event(event_id="good")
    result = validate([good, record], EVENTS, policy)
    assert result.table.column("event_id").to_pylist() == ["good"]
    assert len(result.rejected) == 1
    rejection = result.rejected[0]
    assert rejection.row == 1
    assert reason in rejection.reason
    assert rejection.record["event_id"] == record["event_id"]


def test_all_reasons_of_a_row_are_reported(policy):
    result = validate([event(event_type="nope", dwell_time_s=-1, country="x")], EVENTS, policy)
    reason = result.rejected[0].reason
    assert "unknown event_type" in reason and "dwell_time_s" in reason and "country" in reason


def test_exact_duplicates_are_dropped_and_counted(policy):
    result = validate([event(), event(), event(event_id="e2")], EVENTS, policy)
    assert result.table.column("event_id").to_pylist() == ["e1", "e2"]
    assert result.duplicates == 1 and result.rejected == []
    assert result.rows.tolist() == [0, 2]


def test_conflicting_duplicate_keeps_the_first_and_rejects_the_rest(policy):
    result = validate([event(), event(user_id="u2")], EVENTS, policy)
    assert result.table.column("user_id").to_pylist() == ["u1"]
    assert result.rejected[0].row == 1
    assert result.rejected[0].reason == ("conflicting duplicate: event_id 'e1' already appeared "
                                         "with different values at input row 0")


def test_every_row_is_accounted_for(policy):
    records = [event(event_id=str(i % 7), user_id=None if i % 5 == 0 else "u") for i in range(40)]
    result = validate(records, EVENTS, policy)
    assert result.received == 40
    assert len(result.table) + len(result.rejected) + result.duplicates == 40


def test_missing_required_column_is_a_schema_error(policy):
    records = [{k: v for k, v in event().items() if k != "timestamp"}]
    with pytest.raises(SchemaError, match=r"events input lacks required column\(s\) "
                                          r"\['timestamp'\]"):
        validate(records, EVENTS, policy)


def test_unknown_column_is_a_schema_error_not_silently_dropped(policy):
    with pytest.raises(SchemaError, match=r"unknown column\(s\) \['watch_time'\]"):
        validate([event(watch_time=3.0)], EVENTS, policy)


def test_ingested_at_in_input_is_refused(policy):
    with pytest.raises(SchemaError, match="which the lake writes itself"):
        validate([event(ingested_at="2026-10-01T00:00:00Z")], EVENTS, policy)


def test_non_mapping_record_is_a_schema_error(policy):
    with pytest.raises(SchemaError, match="record 1 is a list"):
        validate([event(), ["e1", "u1"]], EVENTS, policy)


def test_typed_arrow_and_pandas_inputs(policy):
    frame = pd.DataFrame([event(), event(event_id="e2", dwell_time_s=-1)])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    for data in (frame, pa.Table.from_pandas(frame, preserve_index=False)):
        result = validate(data, EVENTS, policy)
        assert result.table.column("event_id").to_pylist() == ["e1"]
        assert [r.row for r in result.rejected] == [1]



ITEM = {"item_id": "i1", "title": "A film", "category": "Drama", "language": "en",
        "tags": ["Drama"], "created_at": "1995-01-01T00:00:00Z", "duration_s": 5400}


@pytest.mark.parametrize("override, reason", [
    ({"item_id": None}, "missing required field 'item_id'"),
    ({"duration_s": -1}, "duration_s must be a finite number >= 0"),
    ({"created_at": "2027-06-01T00:00:00Z"}, "created_at 2027-06-01T00:00:00+00:00 is in the "
                                             "future"),
    ({"language": "ENG"}, "language 'ENG' is not a valid code"),
    ({"tags": "Drama|Comedy"}, "tags: expected a list of strings"),
])
def test_bad_items(policy, override, reason):
    result = validate([ITEM, {**ITEM, "item_id": "i2", **override}], ITEMS, policy)
    assert result.table.column("item_id").to_pylist() == ["i1"]
    assert reason in result.rejected[0].reason


def test_old_items_are_fine(policy):
    result = validate([{**ITEM, "created_at": "1902-09-01T00:00:00Z"}], ITEMS, policy)
    assert result.rejected == []


def test_users_may_have_only_an_id(policy):
    result = validate([{"user_id": "u1"}], USERS, policy)
    assert result.rejected == [] and result.table.num_rows == 1


@pytest.mark.parametrize("override, reason", [
    ({"age_bucket": "30"}, "unknown age_bucket '30'"),
    ({"signup_at": "2030-01-01T00:00:00Z"}, "signup_at 2030-01-01T00:00:00+00:00 is in the future"),
    ({"declared_categories": "news"}, "declared_categories: expected a list of strings"),
    ({"device": "watch"}, "unknown device 'watch'"),
])
def test_bad_users(policy, override, reason):
    result = validate([{"user_id": "u1", **override}], USERS, policy)
    assert reason in result.rejected[0].reason


def test_input_without_columns_is_a_schema_error(policy):
    with pytest.raises(SchemaError, match="lacks required column"):
        validate([], EVENTS, policy)


def _decision(**override):
    row = {"request_id": "r1", "timestamp": "2026-10-01T12:00:00Z", "user_id": "u1",
           "policy": '{"policy":"uniform"}', "seed": 7, "k": 3, "experiments": [],
           "list_item_ids": ["a", "b", "c", "d"], "list_scores": [0.9, 0.5, 0.4, 0.1],
           "list_categories": ["x", "y", "x", "z"], "list_ages_s": [10.0, None, 5.0, 1.0],
           "list_sources": ["two-tower"] * 4, "recent_categories": ["x"],
           "ranks": [0, 3, 1], "propensities": [1.0, 0.5, 0.25],
           "cascade_propensities": [1.0, 0.5, 0.125], "bandit_updates": None}
    return {**row, **override}


BAD_DECISIONS = [
    ("k zero", {"k": 0}, "k must be > 0 and at least the slots (3), got 0"),
    ("k below the slots", {"k": 2}, "k must be > 0 and at least the slots (3), got 2"),
    ("short scores", {"list_scores": [0.9, 0.5]},
     "the list's columns and the slots' columns must each have one length (the list has 4 "
     "items, 3 slots)"),
    ("short propensities", {"propensities": [1.0, 0.5]},
     "the list's columns and the slots' columns must each have one length"),
    ("rank repeated", {"ranks": [0, 0, 1]}, "ranks must be distinct places in the list of 4, "
                                            "got [0, 0, 1]"),
    ("rank outside the list", {"ranks": [0, 4, 1]}, "ranks must be distinct places in the list "
                                                    "of 4, got [0, 4, 1]"),
    ("zero propensity", {"propensities": [1.0, 0.0, 0.25]}, "propensities must lie in (0, 1]"),
    ("cascade above one", {"cascade_propensities": [1.0, 1.5, 0.1]},
     "propensities must lie in (0, 1]"),
    ("future", {"timestamp": "2026-11-05T00:00:00Z"}, "is in the future"),
    ("missing policy", {"policy": None}, "missing required field 'policy'"),
]


@pytest.mark.parametrize("override, reason", [(o, why) for _, o, why in BAD_DECISIONS],
                         ids=[name for name, _, _ in BAD_DECISIONS])
def test_bad_decisions_are_rejected_with_their_reason(policy, override, reason):
    result = validate([_decision(request_id="good"), _decision(**override)], DECISIONS, policy)
    assert result.table.column("request_id").to_pylist() == ["good"]
    assert len(result.rejected) == 1 and reason in result.rejected[0].reason, \
        result.rejected[0].reason
