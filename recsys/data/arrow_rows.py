"""Arrow tables as Python rows, fast: Arrow converts a time-zone-aware timestamp to a
``datetime`` in about 6 us; from integer microseconds it takes about 1 us.

Guarantees: :func:`rows_of` gives the same dicts as ``table.to_pylist()``, except that UTC
microsecond timestamp columns hold UTC ``datetime`` values (``times="datetime"``: equal to
Arrow's) or integer microseconds since the epoch (``times="micros"``); nulls stay None.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MICRO = dt.timedelta(microseconds=1)


def _datetimes(micros: list) -> list:
    return [None if v is None else _EPOCH + v * _MICRO for v in micros]


def rows_of(table: pa.Table, times: str = "datetime") -> list[dict]:
    """``table``'s rows as dicts; timestamp columns (microsecond, UTC) as UTC datetimes or,
    with ``times="micros"``, integer microseconds."""
    if times not in ("datetime", "micros"):
        raise ValueError(f"times must be 'datetime' or 'micros', got {times!r}")
    columns = {}
    for field, column in zip(table.schema, table.columns):
        if pa.types.is_timestamp(field.type) and field.type.unit == "us" and \
                field.type.tz in ("UTC", "+00:00"):
            micros = column.cast(pa.int64()).to_pylist()
            columns[field.name] = micros if times == "micros" else _datetimes(micros)
        else:
            columns[field.name] = column.to_pylist()
    names = list(columns)
    if not names:
        return [{} for _ in range(table.num_rows)]
    return [dict(zip(names, values)) for values in zip(*columns.values())]


__all__ = ["rows_of"]
