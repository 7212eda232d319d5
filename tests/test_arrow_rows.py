"""Arrow tables as Python rows (``recsys.data.arrow_rows``) equal Arrow's own ``to_pylist``."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from recsys.data.arrow_rows import rows_of
from recsys.data.schemas import EVENTS


def _table() -> pa.Table:
    utc = dt.timezone.utc
    return pa.table({
        "ts": pa.array([dt.datetime(2026, 11, 1, 10, tzinfo=utc), None,
                        dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=utc)],
                       pa.timestamp("us", tz="UTC")),
        "naive": pa.array([dt.datetime(2026, 1, 1), None, dt.datetime(2026, 1, 2)],
                          pa.timestamp("us")),
        "name": ["a", None, ""], "tags": [["x"], None, []], "n": pa.array([1, None, 3])})


def test_rows_equal_arrows_own_with_datetimes_or_microseconds():
    table = _table()
    assert rows_of(table) == table.to_pylist()
    micros = rows_of(table, times="micros")
    assert [r["ts"] for r in micros] == [1_793_527_200_000_000, None, -1]
    assert [{k: v for k, v in r.items() if k != "ts"} for r in micros] == [
        {k: v for k, v in r.items() if k != "ts"} for r in table.to_pylist()]


def test_empty_tables_give_no_rows():
    assert rows_of(pa.table({"a": pa.array([], pa.int64())})) == []
    assert rows_of(EVENTS.schema.empty_table()) == []


def test_an_unknown_time_form_is_refused():
    with pytest.raises(ValueError, match="times must be 'datetime' or 'micros', got 'iso'"):
        rows_of(_table(), times="iso")
