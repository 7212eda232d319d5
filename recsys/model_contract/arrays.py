"""Tables (pandas) to the towers' input arrays, following :mod:`recsys.model_contract.feature_spec`.

Guarantees: one output row per input row, in order; lists are truncated or padded to their
spec's width; missing values become the spec's missing marker; a required column that is
absent raises :class:`~recsys.errors.SchemaError` naming it and where it should come from.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from recsys.data.records import US_PER_DAY
from recsys.errors import SchemaError
from recsys.model_contract.feature_spec import InputSpec


def _scalar(values: pd.Series, spec: InputSpec) -> np.ndarray:
    if spec.dtype == "string":
        out = values.astype(object).where(values.notna(), "")
        return np.asarray([str(v) for v in out], dtype=object)
    if spec.dtype == "int64":
        return pd.to_numeric(values, errors="coerce").fillna(0).to_numpy(np.int64)
    return pd.to_numeric(values, errors="coerce").to_numpy(np.float32)


def _padded(values: pd.Series, spec: InputSpec) -> np.ndarray:
    width = spec.width
    out = np.full((len(values), width), spec.pad, dtype=spec.numpy_dtype)
    for row, entries in enumerate(values):
        if entries is None or (isinstance(entries, float) and np.isnan(entries)):
            continue
        kept = list(entries)[:width]
        if spec.dtype == "string":
            kept = ["" if v is None else str(v) for v in kept]
        else:
            kept = [spec.pad if v is None or v != v else v for v in kept]
        out[row, :len(kept)] = kept
    return out


def to_arrays(frame: pd.DataFrame, specs: Iterable[InputSpec],
              source: str = "the training data") -> dict[str, np.ndarray]:
    """The columns of ``frame`` named by ``specs`` as arrays (see the module guarantees)."""
    specs = list(specs)
    missing = [s.name for s in specs if s.name not in frame.columns]
    if missing:
        raise SchemaError(f"{source} lacks column(s) {', '.join(missing)}; "
                          f"it has {', '.join(map(str, frame.columns))}")
    return {s.name: (_scalar(frame[s.name], s) if s.width is None else _padded(frame[s.name], s))
            for s in specs}


def with_missing_columns(frame: pd.DataFrame, specs: Iterable[InputSpec]) -> pd.DataFrame:
    """``frame`` (changed in place and returned) with every column of ``specs``; the absent
    ones hold missing values (``spec.missing``, or an empty list)."""
    for spec in specs:
        if spec.name not in frame.columns:
            frame[spec.name] = ([spec.missing] * len(frame) if spec.width is None
                                else [[] for _ in range(len(frame))])
    return frame


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value is pd.NA


def _number(value, default):
    """What ``pd.to_numeric(errors="coerce")`` makes of one value (``default`` if not a
    number)."""
    if _missing(value) or isinstance(value, (bool, np.bool_)):
        return default if not isinstance(value, (bool, np.bool_)) else float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def records_to_arrays(records: Sequence[Mapping], specs: Iterable[InputSpec],
                      shared: Mapping | None = None) -> dict[str, np.ndarray]:
    """:func:`to_arrays` for plain records (one dict per row) without building a DataFrame:
    the serving path's encoder, same rules, much faster for a few hundred rows. A column absent
    from a record (and from ``shared``, values common to every row) is missing."""
    shared = shared or {}
    n = len(records)
    out = {}
    for spec in specs:
        name = spec.name
        if name in shared:
            values = [shared[name]] * n
        else:
            values = [r.get(name) for r in records]
        if spec.width is None:
            if spec.dtype == "string":
                out[name] = np.asarray(["" if _missing(v) else str(v) for v in values],
                                       dtype=object).reshape(n)
            elif spec.dtype == "int64":
                out[name] = np.asarray([_number(v, 0) for v in values], dtype=np.float64
                                       ).astype(np.int64).reshape(n)
            else:
                out[name] = np.asarray([_number(v, np.nan) for v in values],
                                       dtype=np.float32).reshape(n)
            continue
        array = np.full((n, spec.width), spec.pad, dtype=spec.numpy_dtype)
        for row, entries in enumerate(values):
            if entries is None or (isinstance(entries, float) and entries != entries):
                continue
            kept = list(entries)[:spec.width]
            if spec.dtype == "string":
                kept = ["" if v is None else str(v) for v in kept]
            else:
                kept = [spec.pad if v is None or v != v else v for v in kept]
            array[row, :len(kept)] = kept
        out[name] = array
    return out


def with_item_age(items: pd.DataFrame, reference_us: np.ndarray | int) -> pd.DataFrame:
    """``items`` plus ``item_age_days`` at ``reference_us`` (one time, or one per row);
    NaN where the creation time is unknown."""
    created = pd.to_numeric(items["item_created_at_s"], errors="coerce").to_numpy(np.float64)
    age = (np.asarray(reference_us, dtype=np.float64) / US_PER_DAY) - created / 86_400.0
    return items.assign(item_age_days=age.astype(np.float32))


def take(arrays: Mapping[str, np.ndarray], index: np.ndarray) -> dict[str, np.ndarray]:
    """The rows ``index`` of every array."""
    return {name: values[index] for name, values in arrays.items()}


__all__ = ["to_arrays", "records_to_arrays", "with_missing_columns", "with_item_age", "take",
           "US_PER_DAY"]
