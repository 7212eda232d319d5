"""Validate an input against a table spec: typed valid rows out, every bad row accounted for.

Guarantees of :func:`validate`:
* An input that does not fit the table as a whole (a required column absent, an unknown column)
  raises :class:`~recsys.errors.SchemaError` naming the columns; nothing is partially accepted.
* Every input row ends up in exactly one place: the valid table, the list of rejections (with
  every reason that applies to it), or the count of exact duplicates (a later row identical to an
  earlier row with the same key). A later row with the same key but different content is a
  conflict and is rejected; the first one is kept.
* Valid rows keep their input order, and ``rows`` maps them back to input positions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recsys.data.coercion import RawColumn, coerce
from recsys.data.rules import RULES, ValidationPolicy
from recsys.data.schemas import INGESTED_AT, TableSpec
from recsys.errors import SchemaError

Input = pa.Table | pd.DataFrame | Iterable[Mapping[str, Any]]


@dataclass(frozen=True)
class Rejection:
    """One bad input record: its 0-based position in the input, why, and its raw values.

    ``location`` (e.g. ``ratings.csv:57``) is set by parsers that know where the record was.
    """

    row: int
    reason: str
    record: dict[str, Any]
    location: str | None = None


@dataclass
class ValidationResult:
    table: pa.Table
    rows: np.ndarray
    rejected: list[Rejection]
    duplicates: int

    @property
    def received(self) -> int:
        return len(self.table) + len(self.rejected) + self.duplicates


def _raw_columns(data: Input) -> tuple[dict[str, RawColumn], int]:
    if isinstance(data, pa.Table):
        return {name: data.column(name) for name in data.column_names}, data.num_rows
    if not isinstance(data, pd.DataFrame):
        records = list(data)
        bad = [i for i, r in enumerate(records) if not isinstance(r, (dict, Mapping))]
        if bad:
            raise SchemaError(f"record {bad[0]} is a {type(records[bad[0]]).__name__}, "
                              "expected a mapping of field names to values")
        data = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    return {str(name): data[name] for name in data.columns}, len(data)


def _check_columns(spec: TableSpec, names: Iterable[str]) -> None:
    names = set(names)
    if INGESTED_AT in names:
        raise SchemaError(f"{spec.name} input has a column '{INGESTED_AT}', which the lake "
                          "writes itself; drop it from the input")
    unknown = sorted(names - set(spec.input_columns))
    if unknown:
        raise SchemaError(f"{spec.name} input has unknown column(s) {unknown}; "
                          f"allowed: {list(spec.input_columns)}")
    absent = [name for name in spec.required if name not in names]
    if absent:
        raise SchemaError(f"{spec.name} input lacks required column(s) {absent}; "
                          f"required: {list(spec.required)}")


def _json_safe(value: Any) -> Any:
    if isinstance(value, (np.ndarray, np.generic)):
        value = value.tolist()
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return None if value is None else str(value)


def _record(raw: Mapping[str, RawColumn], i: int) -> dict[str, Any]:
    out = {}
    for name, column in raw.items():
        value = column[i].as_py() if isinstance(column, (pa.Array, pa.ChunkedArray)) else (
            column.iloc[i])
        if isinstance(value, float) and np.isnan(value):
            value = None
        out[name] = _json_safe(value)
    return out


def row_fingerprints(table: pa.Table) -> np.ndarray:
    """A 64-bit hash of each row's content (lists joined), for telling repeats from conflicts."""
    cols = {}
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_list(column.type):
            column = pc.binary_join(column, "\x1f")
        cols[name] = column.to_pandas()
    return pd.util.hash_pandas_object(pd.DataFrame(cols), index=False).to_numpy()


def validate(data: Input, spec: TableSpec, policy: ValidationPolicy | None = None) -> (
        ValidationResult):
    """Check ``data`` against ``spec``; see the module docstring for the guarantees."""
    policy = policy or ValidationPolicy()
    raw, n = _raw_columns(data)
    _check_columns(spec, raw)
    reasons: list[list[str]] = [[] for _ in range(n)]
    bad = np.zeros(n, dtype=bool)
    typed: dict[str, pa.Array] = {}
    for f in spec.schema:
        if f.name == INGESTED_AT:
            continue
        if f.name not in raw:
            typed[f.name] = pa.nulls(n, type=f.type)
            continue
        result = coerce(raw[f.name], f)
        typed[f.name] = result.array
        for i, why in result.reasons.items():
            reasons[i].append(why)
        bad |= result.bad
        if not f.nullable:
            missing = ~np.asarray(pc.is_valid(result.array).to_numpy(zero_copy_only=False),
                                  dtype=bool) & ~result.bad
            if pa.types.is_string(f.type):
                blank = pc.equal(pc.utf8_trim_whitespace(result.array), "")
                missing |= np.asarray(pc.fill_null(blank, False).to_numpy(zero_copy_only=False),
                                      dtype=bool)
            for i in np.flatnonzero(missing):
                reasons[i].append(f"missing required field '{f.name}'")
            bad |= missing
    for rule in RULES[spec.name](typed, policy):
        for i in np.flatnonzero(rule.mask):
            reasons[i].append(rule.reason(int(i)))
        bad |= rule.mask

    good_rows = np.flatnonzero(~bad)
    table = pa.table([typed[f.name].take(good_rows) if len(good_rows) < n else typed[f.name]
                      for f in spec.schema if f.name != INGESTED_AT],
                     schema=_input_schema(spec))
    rejected = [Rejection(int(i), "; ".join(reasons[i]), _record(raw, int(i)))
                for i in np.flatnonzero(bad)]
    table, good_rows, duplicates, conflicts = _dedupe(table, good_rows, spec.key)
    rejected.extend(Rejection(row, why, _record(raw, row)) for row, why in conflicts)
    rejected.sort(key=lambda r: r.row)
    return ValidationResult(table, good_rows, rejected, duplicates)


def _input_schema(spec: TableSpec) -> pa.Schema:
    fields = [f for f in spec.schema if f.name != INGESTED_AT]
    return pa.schema(fields, metadata=spec.schema.metadata)


def _dedupe(table: pa.Table, rows: np.ndarray, key: str) -> tuple[
        pa.Table, np.ndarray, int, list[tuple[int, str]]]:
    keys = table.column(key).to_pandas()
    repeated = keys.duplicated(keep="first").to_numpy()
    if not repeated.any():
        return table, rows, 0, []
    prints = row_fingerprints(table)
    first_pos = pd.Series(np.arange(len(keys))).groupby(keys.to_numpy()).transform("first")
    first_pos = first_pos.to_numpy()
    same = prints == prints[first_pos]
    conflicts = [
        (int(rows[i]), f"conflicting duplicate: {key} {keys.iloc[i]!r} already appeared with "
                       f"different values at input row {int(rows[first_pos[i]])}")
        for i in np.flatnonzero(repeated & ~same)
    ]
    keep = np.flatnonzero(~repeated)
    exact = int((repeated & same).sum())
    return table.take(keep), rows[keep], exact, conflicts
