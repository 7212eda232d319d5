"""One batch of a source turned into rows of a lake table by the table's mapping.

Guarantees of :func:`map_batch`:

* Every row of the batch ends in exactly one place: the mapped table (to be validated by the
  lake), the rejections (with the row's ``file:record`` location and every reason), or the
  dropped count (an event type the mapping drops).
* An event type that is neither one of the lake's nor mapped is rejected with its value; a
  time that cannot be read in the mapping's unit or format is rejected with its value; a time
  out of the representable range is rejected, never wrapped.
* Values are otherwise passed on as read: the lake's validation converts and checks them.

:func:`check_columns` refuses, naming them, mapped columns a source lacks and required fields
that nothing fills.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recsys.data.importing.mapping import EventsMapping, TableMapping
from recsys.data.importing.sources import SourceBatch
from recsys.data.schemas import EVENT_TYPES, TableSpec
from recsys.data.validation import Rejection
from recsys.errors import SchemaError

UNIT_NANOS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_MIN_S, _MAX_S = -62_135_596_800, 253_402_300_799  # 0001-01-01, 9999-12-31T23:59:59
# an offset after a time of day (not the day of a bare date: 2024-05-01)
_OFFSET = re.compile(r"\d:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$",
                     re.IGNORECASE)
_NUMBER = re.compile(r"^\s*-?\d+(\.\d*)?\s*$")


@dataclass
class MappedBatch:
    """``table``: lake fields of the rows kept; ``rows``: their rows in the batch;
    ``rejected``: rows refused by the mapping, located; ``dropped``: rows left out by it."""

    table: pa.Table
    rows: np.ndarray
    rejected: list[Rejection]
    dropped: int


def check_columns(spec: TableSpec, mapping: TableMapping, available: list[str],
                  source: str) -> dict[str, str]:
    """{lake field: source column} for a source with columns ``available``; SchemaError naming
    a mapped column it lacks or a required field nothing fills."""
    resolved = mapping.sources(spec, available)
    have = set(available)
    for lake_field, column in resolved.items():
        if column not in have:
            raise SchemaError(f"{spec.name}: column {column!r} (mapped to {lake_field}) is not in "
                              f"{source}; its columns: {', '.join(available)}")
    built = ()
    if isinstance(mapping, EventsMapping) and mapping.event_id_from:
        built = ("event_id",)
        absent = [c for c in mapping.event_id_from if c not in have]
        if absent:
            raise SchemaError(f"events: event_id_from column(s) {absent} are not in {source}; "
                              f"its columns: {', '.join(available)}")
    for name in spec.required:
        if name not in resolved and name not in mapping.constants and name not in built:
            hint = (" or build it with --event-id-from COLUMN,..." if name == "event_id"
                    else "")
            raise SchemaError(f"{spec.name}: nothing in {source} fills the required field "
                              f"{name!r}; map a column to it with --column "
                              f"{spec.name}.{name}=COLUMN{hint} (its columns: "
                              f"{', '.join(available)})")
    return resolved


def map_batch(batch: SourceBatch, spec: TableSpec, mapping: TableMapping,
              resolved: dict[str, str]) -> MappedBatch:
    """The batch's rows as the lake's ``spec`` fields (see the module guarantees)."""
    raw = batch.table
    n = raw.num_rows
    reasons: dict[int, list[str]] = {}
    dropped = np.zeros(n, dtype=bool)
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    for lake_field, source in resolved.items():
        column = raw.column(source)
        target = spec.schema.field(lake_field).type
        if lake_field == "event_type" and isinstance(mapping, EventsMapping):
            column, dropped = _event_types(column, mapping, reasons)
        elif pa.types.is_timestamp(target):
            column = _timestamps(column, lake_field, source, mapping, reasons)
        elif pa.types.is_list(target) and _is_text(column.type):
            column = _split(column, mapping.list_separator)
        columns[lake_field] = column
    for lake_field, value in mapping.constants.items():
        columns[lake_field] = pa.array([value] * n) if value is not None else pa.nulls(n)
    if isinstance(mapping, EventsMapping) and mapping.event_id_from:
        columns["event_id"] = _built_ids(raw, mapping.event_id_from, mapping.event_id_prefix)
    for row in np.flatnonzero(dropped):  # left out by the mapping: not also a rejection
        reasons.pop(int(row), None)
    bad = np.zeros(n, dtype=bool)
    bad[list(reasons)] = True
    keep = np.flatnonzero(~bad & ~dropped)
    table = pa.table({name: column.take(keep) if len(keep) < n else column
                      for name, column in columns.items()})
    rejected = [Rejection(-1, "; ".join(why), _raw_record(raw, row), batch.location(row))
                for row, why in sorted(reasons.items())]
    return MappedBatch(table, keep, rejected, int(dropped.sum()))


def _is_text(type_: pa.DataType) -> bool:
    return pa.types.is_string(type_) or pa.types.is_large_string(type_)


def _raw_record(raw: pa.Table, row: int) -> dict:
    return {name: _plain(raw.column(name)[row].as_py()) for name in raw.column_names}


def _plain(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return str(value)


def _event_types(column, mapping: EventsMapping, reasons: dict[int, list[str]]):
    values = pd.Series(column.cast(pa.string()).to_pandas(), dtype=object)
    translation = {**{t: t for t in EVENT_TYPES}, **mapping.event_types}
    mapped = values.map(translation)
    dropped = values.isin(mapping.drop_event_types).to_numpy()
    unknown = (mapped.isna() & values.notna()).to_numpy() & ~dropped
    for row in np.flatnonzero(unknown):
        value = values.iloc[row]
        reasons.setdefault(int(row), []).append(
            f"event_type {value!r} is not mapped to one of the lake's types "
            f"({', '.join(EVENT_TYPES)}); map it with --event-type {value}=TYPE or drop it "
            f"with --drop-event-type {value}")
    return pa.array(mapped.where(mapped.notna(), None).tolist(), type=pa.string()), dropped


def _timestamps(column, lake_field: str, source: str, mapping: TableMapping,
                reasons: dict[int, list[str]]) -> pa.Array:
    """UTC timestamps; rows that cannot be read get a reason and a null."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    unit = mapping.timestamp_unit
    if (pa.types.is_timestamp(column.type) or pa.types.is_date(column.type)) and (
            mapping.timestamp_format is None and unit in ("auto", "iso")):
        return _arrow_times(column, mapping.timezone)
    numeric = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
    if unit in UNIT_NANOS:
        return _from_numbers(column, unit, lake_field, reasons)
    if numeric:
        raise SchemaError(f"{lake_field}: column {source!r} holds numbers ({column.type}); say "
                          "their unit with --timestamp-unit (s, ms, us or ns)")
    text = pd.Series(column.cast(pa.string()).to_pandas(), dtype=object)
    if mapping.timestamp_format:
        parsed = pd.to_datetime(text, format=mapping.timestamp_format, errors="coerce",
                                utc="%z" in mapping.timestamp_format)
        if parsed.dt.tz is None:
            parsed = _localize(parsed, mapping.timezone)
        parsed = parsed.dt.tz_convert("UTC")
        expected = f"a time in the format {mapping.timestamp_format!r}"
    else:
        parsed = _iso(text, mapping.timezone)
        expected = "an ISO 8601 time"
    failed = (parsed.isna() & text.notna() & (text.str.strip() != "")).to_numpy()
    parsed = _to_utc_micros(parsed)
    for row in np.flatnonzero(failed):
        value = text.iloc[row]
        hint = (" (a number: say its unit with --timestamp-unit s, ms, us or ns)"
                if _NUMBER.match(value) and not mapping.timestamp_format else "")
        reasons.setdefault(int(row), []).append(
            f"{lake_field}: cannot read {value!r} as {expected}{hint}")
    return parsed


UTC_MICROS = pa.timestamp("us", tz="UTC")


def _to_utc_micros(parsed: pd.Series) -> pa.Array:
    """Parsed UTC times (pandas, nanoseconds) as Arrow microseconds, sub-microsecond digits
    dropped (the lake keeps microseconds)."""
    return pa.array(parsed).cast(UTC_MICROS, safe=False)


def _arrow_times(column: pa.Array, zone: str) -> pa.Array:
    """Arrow timestamps or dates as UTC microseconds, in Arrow (any year 1-9999): naive ones
    read in ``zone`` as :func:`_localize` reads them."""
    import pyarrow.compute as pc

    if pa.types.is_date(column.type):
        column = column.cast(pa.timestamp("us"))
    if column.type.tz is None:
        column = pc.assume_timezone(column.cast(pa.timestamp("us"), safe=False), timezone=zone,
                                    ambiguous="earliest", nonexistent="latest")
    return column.cast(UTC_MICROS, safe=False)


def _localize(series: pd.Series, zone: str) -> pd.Series:
    """Naive times read in ``zone``. A time the zone repeats (clocks going back) is read as
    its first occurrence, one it skips (clocks going forward) is moved past the gap, as
    PostgreSQL reads them."""
    return series.dt.tz_localize(zone, ambiguous=np.ones(len(series), dtype=bool),
                                 nonexistent="shift_forward")


def _iso(text: pd.Series, zone: str) -> pd.Series:
    """ISO 8601 strings as UTC: those with an offset by it, naive ones in ``zone``."""
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    present = text.notna() & (text.str.strip() != "")
    stripped = text[present].str.strip()
    offset = stripped.str.contains(_OFFSET)
    if offset.any():
        out[offset[offset].index] = _parse_iso(stripped[offset], utc=True)
    naive = stripped[~offset]
    if len(naive):
        local = _parse_iso(naive, utc=False)
        if getattr(local.dt, "tz", None) is None:
            out[naive.index] = _localize(local, zone).dt.tz_convert("UTC")
    return out


def _parse_iso(text: pd.Series, utc: bool) -> pd.Series:
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=utc)
    if parsed.dtype == object:  # mixed shapes: value by value
        parsed = pd.Series([pd.to_datetime(v, errors="coerce", utc=utc) for v in text],
                           index=text.index)
    return parsed


def _from_numbers(column, unit: str, lake_field: str, reasons: dict[int, list[str]]
                  ) -> pa.Array:
    """Numbers of ``unit`` since the epoch as UTC microseconds, floored. Whole numbers (Arrow
    integers, or text of digits) are converted exactly; others through float64."""
    n = len(column)
    whole = np.zeros(n, dtype=np.int64)
    is_whole = np.zeros(n, dtype=bool)
    text = None
    if pa.types.is_integer(column.type):
        present = np.asarray(pc.is_valid(column).to_numpy(zero_copy_only=False), dtype=bool)
        whole = pc.fill_null(column.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        is_whole = present.copy()
        numbers = np.where(present, whole.astype(np.float64), np.nan)
    elif pa.types.is_floating(column.type):
        numbers = pc.fill_null(column.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)
        present = ~np.isnan(numbers)
    else:
        text = pd.Series(column.cast(pa.string()).to_pandas(), dtype=object)
        stripped = text.str.strip()
        present = (text.notna() & (stripped != "")).to_numpy()
        digits = stripped.str.fullmatch(r"-?\d{1,19}").fillna(False).to_numpy(dtype=bool)
        values = [int(v) for v in stripped[digits]]  # exact; the range is checked below
        fits = np.array([abs(v) < 2 ** 63 for v in values], dtype=bool)
        rows = np.flatnonzero(digits)[fits]
        whole[rows] = np.array(values, dtype=object)[fits].astype(np.int64)
        is_whole[rows] = True
        numbers = pd.to_numeric(stripped, errors="coerce").to_numpy(dtype=np.float64)
    seconds = numbers / (1e9 / UNIT_NANOS[unit])
    unreadable = present & np.isnan(seconds)
    out_of_range = present & ~unreadable & ((seconds < _MIN_S) | (seconds > _MAX_S))
    for row in np.flatnonzero(unreadable):
        reasons.setdefault(int(row), []).append(
            f"{lake_field}: {text.iloc[row]!r} is not a number of {unit}")
    for row in np.flatnonzero(out_of_range):
        value = text.iloc[row] if text is not None else numbers[row]
        reasons.setdefault(int(row), []).append(
            f"{lake_field}: {value!r} {unit} lies outside years 1-9999 (is the unit right?)")
    good = present & ~unreadable & ~out_of_range
    micros = np.zeros(n, dtype=np.int64)
    exact, approximate = good & is_whole, good & ~is_whole
    micros[exact] = (whole[exact] // 1000 if unit == "ns"  # in range: at most 2.6e17 us
                     else whole[exact] * (UNIT_NANOS[unit] // 1000))
    micros[approximate] = np.floor(numbers[approximate] * (UNIT_NANOS[unit] / 1000)
                                   ).astype(np.int64)
    return pa.array(micros, type=pa.int64(), mask=~good).cast(UTC_MICROS)


def _split(column, separator: str) -> pa.Array:
    """Text split into lists at ``separator``; blank text gives null, parts are trimmed."""
    text = pd.Series(column.to_pandas(), dtype=object)
    lists = [None if v is None or not v.strip() else [p.strip() for p in v.split(separator)
                                                       if p.strip()] for v in text]
    return pa.array(lists, type=pa.list_(pa.string()))


def _built_ids(raw: pa.Table, names: tuple[str, ...], prefix: str) -> pa.Array:
    """A 128-bit hash of each row's raw values in ``names`` (nulls kept apart from "")."""
    parts = [pc.fill_null(raw.column(n).cast(pa.string()), "\x00") for n in names]
    joined = pc.binary_join_element_wise(*parts, "\x1f").to_pylist()
    return pa.array([prefix + hashlib.blake2b(v.encode(), digest_size=16).hexdigest()
                     for v in joined], type=pa.string())


__all__ = ["MappedBatch", "map_batch", "check_columns", "UNIT_NANOS"]
