"""Beam sources over the lake: events, items and users as typed records, bad rows tagged.

Only transforms every runner translates are used (Beam 2.77's DaskRunner among them): files are
listed when the pipeline is built and read by a ``FlatMap``, not a ``Read`` source; a step with
two kinds of output emits one element holding both and lets each consumer take its part, since
that runner does not keep a ``ParDo``'s tagged outputs apart. Counts go to a tally
(``beam_jobs/shards.py``) besides Beam's metrics, which that runner does not collect.
"""

from __future__ import annotations

import glob
import json
import pickle
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NamedTuple

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from beam_jobs.event_blocks import DEFAULT_SHARDS, shard_of
from recsys.data.records import BadRecord, parse_event, parse_item

DEAD_LETTER = "dead_letter"
NAMESPACE = "recsys"
BATCH_ROWS = 65_536
PIECE_ROWS = 4 * BATCH_ROWS


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


class RowBatch(NamedTuple):
    """Rows read together, and where from (a file and batch number: unique per batch)."""
    source: str
    rows: list[dict]


class Piece(NamedTuple):
    """Rows ``[offset, offset + rows)`` of row group ``row_group`` of a Parquet file."""
    path: str
    row_group: int
    offset: int
    rows: int


def parquet_pieces(path: str, piece_rows: int = PIECE_ROWS) -> list[Piece]:
    """A Parquet file as pieces of at most ``piece_rows`` rows, none across row groups."""
    metadata = pq.ParquetFile(path).metadata
    return [Piece(path, group, offset, min(piece_rows, size - offset))
            for group in range(metadata.num_row_groups)
            for size in (metadata.row_group(group).num_rows,)
            for offset in range(0, size, piece_rows)]


def piece_batches(piece: Piece, batch_rows: int = BATCH_ROWS) -> Iterator[RowBatch]:
    """The rows of one piece, ``batch_rows`` at a time; sources ``path#group@row``."""
    table = pq.ParquetFile(piece.path).read_row_group(piece.row_group).slice(
        piece.offset, piece.rows)
    for start in range(0, table.num_rows, batch_rows):
        yield RowBatch(f"{piece.path}#{piece.row_group}@{piece.offset + start}",
                       list(table_rows(table.slice(start, batch_rows))))


def parquet_batches(path: str, batch_rows: int = BATCH_ROWS) -> Iterator[RowBatch]:
    """The rows of one Parquet file, ``batch_rows`` at a time."""
    for piece in parquet_pieces(path):
        yield from piece_batches(piece, batch_rows)


def read_piece(piece: Piece, then: Callable[[RowBatch], Iterable] | None = None) -> Iterator:
    """The :class:`RowBatch` es of one piece or, with ``then``, what ``then`` makes of each
    batch, batch by batch (a batch's rows are dropped before the next one is read)."""
    for batch in piece_batches(piece):
        if then is None:
            yield batch
        else:
            yield from then(batch)


class ReadParquetBatches(beam.PTransform):
    """:class:`RowBatch` es of every Parquet file matching ``pattern`` (none matching: none).
    The files are listed, and cut into pieces of at most ``PIECE_ROWS`` rows, when the
    pipeline is built: a runner's task reads pieces, not whole files (the DaskRunner holds a
    task's whole output in memory, and a file of the lake can hold millions of rows).

    With ``then`` (RowBatch -> iterable), the step that reads a batch also hands it to
    ``then`` and emits what it returns instead: the rows read, large Python objects, are then
    never a step's output. Beam 2.77's DaskRunner keeps the output of every step it runs in
    one task for as long as that task's result is held (at 10M events, every row read, until
    the job ended), so where a consumer of the rows makes something smaller of them, it
    belongs in the same step."""

    def __init__(self, pattern: str, then: Callable[[RowBatch], Iterable] | None = None):
        super().__init__()
        self.pattern, self.then = pattern, then

    def expand(self, pbegin):
        paths = sorted(glob.glob(self.pattern))
        if not paths:
            return pbegin | "Empty" >> beam.Create([])
        return (pbegin
                | "Files" >> beam.Create([piece for path in paths
                                          for piece in parquet_pieces(path)])
                | "Spread" >> beam.Reshuffle()
                | "Read" >> beam.FlatMap(read_piece, self.then))


class ReadParquetRows(beam.PTransform):
    """Rows of every Parquet file matching ``pattern`` (none matching: no rows)."""

    def __init__(self, pattern: str):
        super().__init__()
        self.pattern = pattern

    def expand(self, pbegin):
        return (pbegin
                | "Batches" >> ReadParquetBatches(self.pattern)
                | "Rows" >> beam.FlatMap(lambda batch: batch.rows))


def batch_tally(batches, counter: str):
    """RowBatches -> (counter, rows in the batch, batch source) for a :class:`Tally`."""
    return batches | f"Tally{counter}" >> beam.Map(
        lambda batch: (counter, len(batch.rows), batch.source))


class ParsedBatch(NamedTuple):
    records: list
    dead_letters: list[str]


class Parsed(NamedTuple):
    """The outputs of a parse: ``records``, ``dead_letter`` (JSON lines, also as
    ``parsed[DEAD_LETTER]``), ``batches`` (the records as lists, as parsed together: fewer,
    larger elements for a shuffle) and, from :func:`read_events`, ``tally`` ((counter, n,
    source) triples)."""
    records: Any
    dead_letter: Any
    batches: Any
    tally: Any = ()

    def __getitem__(self, key):
        return self.dead_letter if key == DEAD_LETTER else tuple.__getitem__(self, key)


class ParseRecords(beam.DoFn):
    """Lists of rows -> one :class:`ParsedBatch` each, parsed with a pure parser: bad rows
    become dead-letter lines with their reason. The ``<kind>_read`` / ``<kind>_bad`` Beam
    counters count both, on runners that collect metrics."""

    def __init__(self, kind: str, parser: Callable[[dict], Any]):
        self.kind = kind
        self.parser = parser
        self.read = beam.metrics.Metrics.counter(NAMESPACE, f"{kind}_read")
        self.bad = beam.metrics.Metrics.counter(NAMESPACE, f"{kind}_bad")

    def process(self, rows: list[dict]):
        records, dead = [], []
        for row in rows:
            try:
                records.append(self.parser(row))
            except BadRecord as exc:
                dead.append(json.dumps({"table": self.kind, "reason": str(exc), "record": row},
                                       default=str))
        self.read.inc(len(rows))
        if dead:
            self.bad.inc(len(dead))
        yield ParsedBatch(records, dead)


def _split(parsed_batches) -> Parsed:
    return Parsed(parsed_batches | "Records" >> beam.FlatMap(lambda b: b.records),
                  parsed_batches | "DeadLetters" >> beam.FlatMap(lambda b: b.dead_letters),
                  parsed_batches | "RecordLists" >> beam.Map(lambda b: b.records))


class SplitParsed(beam.PTransform):
    """:class:`ParsedBatch` es -> :class:`Parsed`."""

    def expand(self, parsed_batches):
        return _split(parsed_batches)


class ParseRows(beam.PTransform):
    """rows -> :class:`Parsed`: the records, and ``.dead_letter`` for the bad ones."""

    def __init__(self, kind: str, parser: Callable[[dict], Any]):
        super().__init__()
        self.kind, self.parser = kind, parser

    def expand(self, rows):
        return _split(rows
                      | "One" >> beam.Map(lambda row: [row])
                      | "Parse" >> beam.ParDo(ParseRecords(self.kind, self.parser)))


class ParseBatches(beam.PTransform):
    """RowBatches -> :class:`Parsed`, parsed a batch at a time."""

    def __init__(self, kind: str, parser: Callable[[dict], Any]):
        super().__init__()
        self.kind, self.parser = kind, parser

    def expand(self, batches):
        return _split(batches
                      | "Rows" >> beam.Map(lambda batch: batch.rows)
                      | "Parse" >> beam.ParDo(ParseRecords(self.kind, self.parser)))


class _FirstIngested(beam.CombineFn):
    """Rows of one key -> (the first ingested, how many there were)."""

    def create_accumulator(self):
        return None, 0

    def add_input(self, acc, row):
        return self.merge_accumulators([acc, (row, 1)])

    def merge_accumulators(self, accumulators):
        first, count = None, 0
        for row, n in accumulators:
            count += n
            if row is not None and (first is None or (row.get("ingested_at") or 0)
                                    < (first.get("ingested_at") or 0)):
                first = row
        return first, count

    def extract_output(self, acc):
        return acc


def _has_text(row: dict, key: str) -> bool:
    value = row.get(key)
    return isinstance(value, str) and bool(value.strip())


def one_per_key(rows, key: str, counter: str | None = None):
    """Rows -> (one copy per ``key``, the first ingested, and a tally of ``(counter, -copies
    dropped, key)`` for each key seen more than once). Rows without a key pass through, so
    each reaches the dead letter."""
    with_id = rows | "HasId" >> beam.Filter(_has_text, key)
    without_id = rows | "NoId" >> beam.Filter(lambda row, k: not _has_text(row, k), key)
    firsts = (with_id
              | "ById" >> beam.Map(lambda r, k: (r[k], r), key)
              | "First" >> beam.CombinePerKey(_FirstIngested()))
    unique = ((firsts | "Rows" >> beam.Map(lambda kv: kv[1][0]), without_id)
              | "Merge" >> beam.Flatten())
    dropped = firsts | "Dropped" >> beam.FlatMap(
        lambda kv, name: [(name, 1 - kv[1][1], kv[0])] if kv[1][1] > 1 else [], counter)
    return unique, dropped


class OnePerKey(beam.PTransform):
    """Rows -> one copy per ``key`` (the first ingested); rows without a key pass through,
    so each reaches the dead letter."""

    def __init__(self, key: str = "event_id"):
        super().__init__()
        self.key = key

    def expand(self, rows):
        return one_per_key(rows, self.key)[0]


def read_events(p: beam.Pipeline, lake: Path, also: beam.PCollection | None = None) -> Parsed:
    """The lake's events; with ``also`` (RowBatches of event rows from another source, e.g.
    the PostgreSQL event log) the union, one copy per event id. ``tally`` counts
    ``events_read`` (after that union)."""
    batches = p | "ReadEvents" >> ReadParquetBatches(
        str(lake / "events" / "*" / "part-*.parquet"))
    if also is None:
        parsed = batches | "ParseEvents" >> ParseBatches("events", parse_event)
        return parsed._replace(tally=batch_tally(batches, "events_read"))
    both = (batches, also) | "UnionEvents" >> beam.Flatten()
    rows = both | "EventRows" >> beam.FlatMap(lambda batch: batch.rows)
    unique, dropped = one_per_key(rows, "event_id", "events_read")
    parsed = unique | "ParseEvents" >> ParseRows("events", parse_event)
    return parsed._replace(
        tally=(batch_tally(both, "events_read"), dropped) | "EventTally" >> beam.Flatten())


def _row_blocks(batch: RowBatch, key: str, shards: int) -> list[tuple[int, bytes]]:
    """A batch of rows -> (shard of ``key``, the batch's rows in that shard, pickled)."""
    grouped: dict[int, list[dict]] = {}
    for row in batch.rows:
        grouped.setdefault(shard_of(str(row.get(key)), shards), []).append(row)
    return [(shard, pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL))
            for shard, rows in grouped.items()]


def _latest_rows(keyed: tuple[int, list[bytes]], key: str) -> list[dict]:
    """A shard's blocks of rows -> the latest row per ``key`` (the greatest ``ingested_at``;
    on a tie, the first seen), in key order."""
    latest: dict = {}
    for block in keyed[1]:
        for row in pickle.loads(block):
            k = row.get(key)
            kept = latest.get(k)
            if kept is None or (row.get("ingested_at") or 0) > (kept.get("ingested_at") or 0):
                latest[k] = row
    return [latest[k] for k in sorted(latest, key=str)]


def _latest_then(keyed: tuple[int, list[bytes]], key: str, then: Callable[[list[dict]], Iterable]):
    return then(_latest_rows(keyed, key))


def read_latest(p: beam.Pipeline, lake: Path, table: str, key: str,
                also: beam.PCollection | None = None, shards: int = DEFAULT_SHARDS,
                then: Callable[[list[dict]], Iterable] | None = None):
    """The latest version of each catalogue row (by ``ingested_at``), over the lake and
    ``also`` (RowBatches of the same table from another source) when given: lists of rows,
    one per shard of ``key`` (with ``then``: what ``then`` makes of each list, in the same
    step; :class:`ReadParquetBatches` says why). Rows are shuffled in blocks per (batch,
    shard), not one by one (``beam_jobs/event_blocks.py`` says why); the lake's rows are
    packed into blocks where they are read."""
    name = table.title()
    blocks = p | f"Read{name}" >> ReadParquetBatches(
        str(lake / table / "part-*.parquet"), then=partial(_row_blocks, key=key, shards=shards))
    if also is not None:
        blocks = ((blocks, also | f"Blocks{name}" >> beam.FlatMap(_row_blocks, key, shards))
                  | f"Union{name}" >> beam.Flatten())
    grouped = blocks | f"ByShard{name}" >> beam.GroupByKey()
    if then is None:
        return grouped | f"Latest{name}" >> beam.Map(_latest_rows, key)
    return grouped | f"Latest{name}" >> beam.FlatMap(_latest_then, key, then)


def read_items(p: beam.Pipeline, lake: Path, also: beam.PCollection | None = None,
               shards: int = DEFAULT_SHARDS) -> Parsed:
    """The latest row of every item, parsed where it is chosen (``batches``: one list per
    shard)."""
    return (read_latest(p, lake, "items", "item_id", also, shards,
                        then=ParseRecords("items", parse_item).process)
            | "ParsedItems" >> SplitParsed())
