import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from recsys.data.coercion import coerce
from recsys.data.schemas import TIMESTAMP

STR = pa.field("user_id", pa.string())
F32 = pa.field("watch_time_s", pa.float32())
I32 = pa.field("position", pa.int32())
TS = pa.field("timestamp", TIMESTAMP)
TAGS = pa.field("tags", pa.list_(pa.string()))


def test_matching_arrow_column_passes_through_untouched():
    array = pa.array(["a", "b"])
    out = coerce(array, STR)
    assert out.array is array and not out.bad.any()


def test_integers_become_decimal_id_strings():
    out = coerce(pd.Series([1, 23, 456]), STR)
    assert out.array.to_pylist() == ["1", "23", "456"]


def test_blank_strings_are_missing_not_values():
    out = coerce(pd.Series(["a", "", "   ", None]), STR)
    assert out.array.to_pylist() == ["a", None, None, None]
    assert not out.bad.any()


@pytest.mark.parametrize("value", [1.5, True, ["x"], {"a": 1}])
def test_non_string_ids_are_bad(value):
    out = coerce(pd.Series(["ok", value], dtype=object), STR)
    assert out.bad.tolist() == [False, True]
    assert out.reasons[1].startswith("user_id: expected a string, got")


def test_numbers_from_strings_and_bad_numbers():
    out = coerce(pd.Series(["1.5", 2, "abc", None, True], dtype=object), F32)
    assert out.array.to_pylist()[:2] == [1.5, 2.0]
    assert out.bad.tolist() == [False, False, True, False, True]
    assert out.reasons[2] == "watch_time_s: expected a number, got 'abc'"
    assert out.reasons[4] == "watch_time_s: expected a number, got True"


def test_integers_reject_fractions_and_overflow():
    out = coerce(pd.Series([3, 1.5, 2**40], dtype=object), I32)
    assert out.array.to_pylist() == [3, None, None]
    assert out.bad.tolist() == [False, True, True]
    assert out.reasons[1] == "position: expected an integer, got 1.5"


def test_timestamps_need_an_offset():
    out = coerce(pd.Series(["2024-01-01T10:00:00Z", "2024-01-01T12:00:00+02:00",
                            "2024-01-01T10:00:00", "yesterday", 1700000000], dtype=object), TS)
    utc = dt.timezone.utc
    assert out.array.to_pylist()[:2] == [dt.datetime(2024, 1, 1, 10, tzinfo=utc)] * 2
    assert out.bad.tolist() == [False, False, True, True, True]
    assert "no UTC offset" in out.reasons[2]
    assert out.reasons[4].startswith("timestamp: expected an ISO-8601 timestamp")


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-23:59"])
def test_a_timestamp_outside_datetimes_years_in_utc_is_bad_not_an_error(text):
    out = coerce(pd.Series(["2024-01-01T10:00:00Z", text], dtype=object), TS)
    assert out.bad.tolist() == [False, True]
    assert out.reasons[1] == (f"timestamp: expected an ISO-8601 timestamp with a UTC offset, "
                              f"got '{text}' (outside the years 1 to 9999 once converted to "
                              f"UTC)")


def test_naive_datetimes_are_bad_and_aware_ones_convert_to_utc():
    tz = dt.timezone(dt.timedelta(hours=-5))
    out = coerce(pd.Series([dt.datetime(2024, 1, 1, 5, tzinfo=tz), dt.datetime(2024, 1, 1)],
                           dtype=object), TS)
    assert out.array[0].as_py() == dt.datetime(2024, 1, 1, 10, tzinfo=dt.timezone.utc)
    assert out.bad.tolist() == [False, True]
    assert "naive datetime" in out.reasons[1]


def test_naive_arrow_timestamps_are_bad():
    out = coerce(pa.array([dt.datetime(2024, 1, 1)], type=pa.timestamp("us")), TS)
    assert out.bad.tolist() == [True]


def test_string_lists():
    out = coerce(pd.Series([["a", "b"], None, np.array(["c"]), "a|b", [1]], dtype=object), TAGS)
    assert out.array.to_pylist()[:3] == [["a", "b"], None, ["c"]]
    assert out.bad.tolist() == [False, False, False, True, True]
    assert out.reasons[3] == "tags: expected a list of strings, got 'a|b'"


@pytest.mark.parametrize("field, values", [
    (STR, ["a", "", "  ", None, float("nan"), " b ", "ü"]),
    (STR, [None, None, float("nan")]),
    (STR, ["a", 3, None]),
    (F32, [1.5, None, float("nan"), float("inf"), -0.0]),
    (F32, [None, None]),
    (F32, [1.5, "2.5", "x", True, None]),
    (I32, [1.0, None, 2.5, 3]),
    (TS, ["2026-01-01T00:00:00Z", None, "2026-01-01 00:00", ""]),
    (TAGS, [["a"], None, [], ["b", 1]]),
])
def test_small_columns_coerce_exactly_as_large_ones(field, values):
    """Short columns (the API's batches) take plain-Python paths; a column longer than
    ``SMALL`` takes the vectorised ones; both give the same arrays, flags and reasons."""
    from recsys.data.coercion import SMALL

    small = coerce(pd.Series(values, dtype=object), field)
    frame = pd.DataFrame.from_records([{"v": v} for v in values])
    typed = coerce(frame["v"], field)  # how validation hands columns over (inferred dtype)
    repeats = SMALL // len(values) + 1
    large = coerce(pd.Series(values * repeats, dtype=object), field)
    n = len(values)
    for got in (small, typed):
        assert got.array.to_pylist() == large.array.slice(0, n).to_pylist()
        assert got.bad.tolist() == large.bad[:n].tolist()
        assert got.reasons == {i: r for i, r in large.reasons.items() if i < n}
