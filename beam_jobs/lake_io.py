"""Beam sources over the lake: events, items and users as typed records, bad rows tagged."""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Any, Callable, Iterator

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc

from recsys.data.records import BadRecord, parse_event, parse_item

DEAD_LETTER = "dead_letter"
NAMESPACE = "recsys"


def table_rows(table: pa.Table) -> Iterator[dict]:
    """Rows of an Arrow batch, timestamps as integer microseconds (fast, exact)."""
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_timestamp(column.type):
            column = pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), pa.int64())
        columns[name] = column.to_pylist()
    names = list(columns)
    for values in zip(*(columns[n] for n in names), strict=True):
        yield dict(zip(names, values, strict=True))


class ParseRecords(beam.DoFn):
    """Parse rows with a pure parser; bad rows go to the ``dead_letter`` output with their
    reason, and the ``<kind>_read`` / ``<kind>_bad`` counters count both."""

    def __init__(self, kind: str, parser: Callable[[dict], Any]):
        self.kind = kind
        self.parser = parser
        self.read = beam.metrics.Metrics.counter(NAMESPACE, f"{kind}_read")
        self.bad = beam.metrics.Metrics.counter(NAMESPACE, f"{kind}_bad")

    def process(self, row: dict):
        self.read.inc()
        try:
            yield self.parser(row)
        except BadRecord as exc:
            self.bad.inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, json.dumps(
                {"table": self.kind, "reason": str(exc), "record": row}, default=str))


class ParseRows(beam.PTransform):
    """rows -> records, with ``.dead_letter`` for the bad ones."""

    def __init__(self, kind: str, parser: Callable[[dict], Any]):
        super().__init__()
        self.kind, self.parser = kind, parser

    def expand(self, rows):
        return rows | "Parse" >> beam.ParDo(ParseRecords(self.kind, self.parser)).with_outputs(
            DEAD_LETTER, main="records")


class ReadParquetRows(beam.PTransform):
    """Rows of every Parquet file matching ``pattern`` (none matching: no rows)."""

    def __init__(self, pattern: str):
        super().__init__()
        self.pattern = pattern

    def expand(self, pbegin):
        if not glob.glob(self.pattern):
            return pbegin | "Empty" >> beam.Create([])
        return (pbegin
                | "Read" >> beam.io.ReadFromParquetBatched(self.pattern)
                | "Rows" >> beam.FlatMap(table_rows))


def _first(rows: list[dict]) -> dict:
    return min(rows, key=lambda r: r.get("ingested_at") or 0)


class OnePerKey(beam.PTransform):
    """Rows -> one copy per ``key`` (the first ingested); rows without a key pass through,
    so each reaches the dead letter."""

    def __init__(self, key: str = "event_id"):
        super().__init__()
        self.key = key

    def expand(self, rows):
        key = self.key

        def has_key(row: dict, _n: int) -> int:
            value = row.get(key)
            return 0 if isinstance(value, str) and value.strip() else 1

        with_id, without_id = rows | "HasId" >> beam.Partition(has_key, 2)
        first = (with_id
                 | "ById" >> beam.Map(lambda r: (r[key], r))
                 | "First" >> beam.CombinePerKey(_first)
                 | "Rows" >> beam.Values())
        return (first, without_id) | "Merge" >> beam.Flatten()


def read_events(p: beam.Pipeline, lake: Path, also: beam.PCollection | None = None):
    """The lake's events; with ``also`` (event rows from another source, e.g. the PostgreSQL
    event log) the union, one copy per event id."""
    rows = p | "ReadEvents" >> ReadParquetRows(str(lake / "events" / "*" / "part-*.parquet"))
    if also is not None:
        rows = ((rows, also) | "UnionEvents" >> beam.Flatten()
                | "OnePerEvent" >> OnePerKey("event_id"))
    return rows | "ParseEvents" >> ParseRows("events", parse_event)


def _latest(rows: list[dict]) -> dict:
    return max(rows, key=lambda r: r.get("ingested_at") or 0)


def read_latest(p: beam.Pipeline, lake: Path, table: str, key: str,
                also: beam.PCollection | None = None):
    """The latest version of each catalogue row (by ``ingested_at``), over the lake and
    ``also`` (rows of the same table from another source) when given."""
    rows = p | f"Read{table.title()}" >> ReadParquetRows(str(lake / table / "part-*.parquet"))
    if also is not None:
        rows = (rows, also) | f"Union{table.title()}" >> beam.Flatten()
    return (rows
            | f"Key{table.title()}" >> beam.Map(lambda r: (r[key], r))
            | f"Latest{table.title()}" >> beam.CombinePerKey(_latest)
            | f"Values{table.title()}" >> beam.Values())


def read_items(p: beam.Pipeline, lake: Path, also: beam.PCollection | None = None):
    return (read_latest(p, lake, "items", "item_id", also)
            | "ParseItems" >> ParseRows("items", parse_item))
