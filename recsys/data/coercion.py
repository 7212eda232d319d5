"""Turn raw input columns (Arrow arrays, pandas Series or lists of Python values) into typed Arrow
arrays of a target field's type, reporting which values could not be converted and why.

Guarantees: a value is never silently changed into another value. Missing values (None, NaN,
empty or blank strings) become nulls; a value that cannot be represented in the target type is
flagged as bad with a reason, and its slot becomes null.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

RawColumn = pa.ChunkedArray | pa.Array | pd.Series
_OFFSET_RE = re.compile(r"(Z|[+-]\d{2}:?\d{2})$", re.IGNORECASE)


@dataclass
class Coerced:
    """A typed column plus a mask of values that could not be converted, with reasons."""

    array: pa.Array
    bad: np.ndarray  # bool, True where the raw value was present but unconvertible
    reasons: dict[int, str]


def coerce(raw: RawColumn, field: pa.Field) -> Coerced:
    """Convert ``raw`` to ``field.type``; see the module docstring for the guarantees."""
    if isinstance(raw, (pa.ChunkedArray, pa.Array)):
        array = raw.combine_chunks() if isinstance(raw, pa.ChunkedArray) else raw
        if array.type == field.type:
            return Coerced(array, np.zeros(len(array), dtype=bool), {})
        if not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
            try:  # lossless arrow casts (int64 -> int32 in range, float64 -> float32 etc.)
                if pa.types.is_timestamp(field.type) and pa.types.is_timestamp(array.type):
                    if array.type.tz is None:
                        raise pa.ArrowInvalid("naive timestamp")
                cast = pc.cast(array, field.type, safe=True)
                return Coerced(cast, np.zeros(len(array), dtype=bool), {})
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        series = array.to_pandas()
    else:
        series = raw.reset_index(drop=True)
    if series.dtype == object and len(series) <= SMALL and all(map(_is_null, series.tolist())):
        return Coerced(pa.nulls(len(series), type=field.type), np.zeros(len(series), bool), {})
    return _COERCERS[_kind(field.type)](series, field)


def _kind(type_: pa.DataType) -> str:
    if pa.types.is_string(type_):
        return "string"
    if pa.types.is_floating(type_):
        return "float"
    if pa.types.is_integer(type_):
        return "int"
    if pa.types.is_timestamp(type_):
        return "timestamp"
    if pa.types.is_list(type_) and pa.types.is_string(type_.value_type):
        return "string_list"
    if pa.types.is_list(type_) and (pa.types.is_floating(type_.value_type)
                                    or pa.types.is_integer(type_.value_type)):
        return "number_list"
    raise NotImplementedError(f"no coercion to {type_}")


def _missing(series: pd.Series) -> np.ndarray:
    """None/NaN/NaT, and strings that are empty or only whitespace."""
    miss = series.isna().to_numpy()
    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        blank = series.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy(dtype=bool)
        miss = miss | blank
    return miss


def _describe(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _per_value(
    series: pd.Series, field: pa.Field, convert: Callable[[Any], Any], expected: str
) -> Coerced:
    """Slow path: convert element by element (mixed-type object columns)."""
    miss = _missing(series)
    out: list[Any] = []
    bad = np.zeros(len(series), dtype=bool)
    reasons: dict[int, str] = {}
    for i, value in enumerate(series.tolist()):
        if miss[i]:
            out.append(None)
            continue
        try:
            out.append(convert(value))
        except (TypeError, ValueError) as exc:
            out.append(None)
            bad[i] = True
            detail = f" ({exc})" if str(exc) else ""
            reasons[i] = f"{field.name}: expected {expected}, got {_describe(value)}{detail}"
    return Coerced(pa.array(out, type=field.type), bad, reasons)


def _to_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return str(int(value))
    raise TypeError("")


SMALL = 4096  # columns up to this long take the plain-Python paths where they apply


def _is_null(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (
        isinstance(value, float) and value != value)


def _coerce_string(series: pd.Series, field: pa.Field) -> Coerced:
    if len(series) <= SMALL and series.dtype == object:
        values = series.tolist()  # the API's small batches: no pandas string machinery
        if all(isinstance(v, str) or _is_null(v) for v in values):
            out = [None if _is_null(v) or not v.strip() else v for v in values]
            return Coerced(pa.array(out, type=field.type), np.zeros(len(values), bool), {})
    if pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
        blank = series.isna() | (series.str.strip() == "")
        array = pa.array(series.where(~blank, None), type=field.type, from_pandas=True)
        return Coerced(array, np.zeros(len(series), bool), {})
    if pd.api.types.is_integer_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        array = pa.array(series.astype(str), type=field.type)
        return Coerced(array, np.zeros(len(series), bool), {})
    return _per_value(series, field, _to_string, "a string")


def _coerce_number(series: pd.Series, field: pa.Field) -> Coerced:
    if pd.api.types.is_float_dtype(series.dtype) and pa.types.is_floating(field.type):
        values = series.to_numpy(dtype=np.float64)  # numbers already: NaN is missing
        return Coerced(pa.array(values, mask=np.isnan(values)).cast(field.type),
                       np.zeros(len(values), bool), {})
    miss = _missing(series)
    is_bool = series.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool)
    numeric = pd.to_numeric(series.where(~miss & ~is_bool), errors="coerce")
    values = numeric.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = (~miss & np.isnan(values)) | is_bool
    reasons = {int(i): f"{field.name}: expected a number, got {_describe(series.iloc[i])}"
               for i in np.flatnonzero(bad)}
    if pa.types.is_integer(field.type):
        ok = ~np.isnan(values)
        frac = ok & (np.floor(np.where(ok, values, 0)) != np.where(ok, values, 0))
        limits = np.iinfo(field.type.to_pandas_dtype())
        big = ok & ((values < limits.min) | (values > limits.max))
        for i in np.flatnonzero(frac | big):
            reasons[int(i)] = f"{field.name}: expected an integer, got {_describe(series.iloc[i])}"
        bad = bad | frac | big
        values = np.where(bad, np.nan, values)
        mask = np.isnan(values)
        array = pa.array(np.where(mask, 0, values).astype(np.int64), mask=mask).cast(field.type)
    else:
        # float32 keeps NaN/inf as given so that the rules can name them; they are not missing.
        array = pa.array(values, mask=np.isnan(values) & (miss | bad)).cast(field.type)
    return Coerced(array, bad, reasons)


def _to_utc(value: Any) -> dt.datetime:
    if isinstance(value, str):
        text = value.strip()
        if not _OFFSET_RE.search(text):
            raise ValueError("no UTC offset; write e.g. 2024-05-01T12:00:00Z")
        try:  # the common ISO 8601 shapes, 30x faster than pandas' parser
            return dt.datetime.fromisoformat(text).astimezone(dt.timezone.utc)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is in year 0 in UTC
            raise ValueError("outside the years 1 to 9999 once converted to UTC") from None
        except ValueError:  # what Python's parser does not take (e.g. nanoseconds)
            stamp = pd.Timestamp(text)
    elif isinstance(value, (dt.datetime, pd.Timestamp, np.datetime64)):
        stamp = pd.Timestamp(value)
        if stamp.tzinfo is None:
            raise ValueError("naive datetime; give it a time zone")
    else:
        raise TypeError("")
    return stamp.tz_convert("UTC").to_pydatetime()


def _coerce_timestamp(series: pd.Series, field: pa.Field) -> Coerced:
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        utc = series.dt.tz_convert("UTC")
        return Coerced(pa.array(utc, type=field.type), np.zeros(len(series), bool), {})
    return _per_value(series, field, _to_utc, "an ISO-8601 timestamp with a UTC offset")


def _to_string_list(value: Any) -> list[str]:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise TypeError("")
    if not all(isinstance(v, str) for v in value):
        raise TypeError("")
    return list(value)


def _coerce_string_list(series: pd.Series, field: pa.Field) -> Coerced:
    miss = series.map(lambda v: v is None or (isinstance(v, float) and np.isnan(v))).to_numpy(bool)
    return _per_value(series.where(~miss, None), field, _to_string_list, "a list of strings")


def _number_list(integers: bool) -> Callable[[Any], list]:
    """A list of numbers (nulls allowed inside; integers only for an integer list)."""
    def convert(value: Any) -> list:
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if not isinstance(value, (list, tuple)):
            raise TypeError("")
        out = []
        for v in value:
            if v is None:
                out.append(None)
            elif isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)):
                raise TypeError("")
            elif integers and float(v) != int(v):
                raise ValueError(f"{v!r} is not an integer")
            else:
                out.append(int(v) if integers else float(v))
        return out
    return convert


def _coerce_number_list(series: pd.Series, field: pa.Field) -> Coerced:
    integers = pa.types.is_integer(field.type.value_type)
    return _per_value(series, field, _number_list(integers),
                      f"a list of {'integers' if integers else 'numbers'}")


_COERCERS: dict[str, Callable[[pd.Series, pa.Field], Coerced]] = {
    "string": _coerce_string,
    "float": _coerce_number,
    "int": _coerce_number,
    "timestamp": _coerce_timestamp,
    "string_list": _coerce_string_list,
    "number_list": _coerce_number_list,
}
