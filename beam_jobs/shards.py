"""Sinks that work the same on every Beam runner, the DaskRunner included, and survive task
retries: rows are buffered per bundle and written as whole files named by their content.

Beam's own file sinks (``WriteToParquet``, ``WriteToText``, ``WriteToTFRecord``) rely on
``Impulse`` and a finalize step that Beam 2.77's ``DaskRunner`` does not translate, and
``BatchElements`` emits its last batch from ``finish_bundle``, whose outputs that runner drops.
Here every file is written in place by the DoFn that fills it:

* a file holds at most ``rows_per_file`` rows of one bundle, written to a temporary name and
  renamed into place, so a reader never sees half a file;
* its name is a digest of its rows, so a task that a runner retries (a Dask worker died
  mid-task) rewrites the same files under the same names instead of adding copies. Two
  different bundles holding exactly the same rows in the same order would share a name: for
  rows that carry ids, as every table here does, that cannot happen;
* the DoFn emits each file's name when it fills one; the last, partial file of a bundle is
  written in ``finish_bundle`` and not emitted. Nothing downstream needs the names: they give
  the pipeline one final step that depends on every sink (see :class:`Commit`).

The :class:`Tally` counts a job's records without Beam metrics, which that runner does not
collect: each step emits a few ``(counter, n, source)`` triples (per batch read, per group
merged), and the tally is a small table the driver sums when the run is over. ``source`` names
where the count comes from (a file and batch, a key), which keeps two equal counts of different
origins apart.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import uuid
from pathlib import Path
from typing import Callable, Iterable

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq

ROWS_PER_FILE = 50_000
TALLY = "_tally"
TALLY_SCHEMA = pa.schema([pa.field("counter", pa.string(), nullable=False),
                          pa.field("value", pa.int64(), nullable=False),
                          pa.field("source", pa.string(), nullable=False)])
FileWriter = Callable[[Path, list], None]


def _digest(rows: list) -> str:
    return hashlib.blake2b(pickle.dumps(rows, protocol=5), digest_size=10).hexdigest()


class FileShards:
    """A bundle's buffer of rows for one output: ``add`` writes a file of ``rows_per_file``
    rows when it is full (returning its path), ``flush`` writes what is left. Files are
    ``directory/prefix-DIGEST.suffix``, written by ``writer(path, rows)`` to a temporary name
    and renamed; see the module docstring."""

    def __init__(self, directory: str, writer: FileWriter, suffix: str, prefix: str = "part",
                 rows_per_file: int = ROWS_PER_FILE):
        if rows_per_file < 1:
            raise ValueError(f"rows_per_file must be >= 1, got {rows_per_file}")
        self.directory, self.writer, self.suffix = directory, writer, suffix
        self.prefix, self.rows_per_file = prefix, rows_per_file
        self._rows: list = []

    def reset(self) -> None:
        self._rows = []

    def add(self, row) -> str | None:
        self._rows.append(row)
        return self.flush() if len(self._rows) >= self.rows_per_file else None

    def flush(self) -> str | None:
        if not self._rows:
            return None
        rows, self._rows = self._rows, []
        directory = Path(self.directory)
        directory.mkdir(parents=True, exist_ok=True)
        final = directory / f"{self.prefix}-{_digest(rows)}{self.suffix}"
        temporary = directory / f".{final.name}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            self.writer(temporary, rows)
            os.replace(temporary, final)
        finally:
            temporary.unlink(missing_ok=True)
        return str(final)


class WriteFiles(beam.DoFn):
    """Elements -> files of at most ``rows_per_file`` elements (:class:`FileShards`); emits
    the path of each file filled by ``process`` (not of the bundle's last one). With
    ``rows_of``, each element is ``rows_of(element)``'s rows, made here: rows made by the step
    before would be that step's output, which a runner may hold (``ReadParquetBatches`` in
    ``beam_jobs/lake_io.py``)."""

    def __init__(self, directory: str, writer: FileWriter, suffix: str, prefix: str = "part",
                 rows_per_file: int = ROWS_PER_FILE,
                 rows_of: Callable[[object], Iterable] | None = None):
        self.shards = FileShards(directory, writer, suffix, prefix, rows_per_file)
        self.rows_of = rows_of

    def start_bundle(self):
        self.shards.reset()

    def process(self, element):
        for row in ((element,) if self.rows_of is None else self.rows_of(element)):
            written = self.shards.add(row)
            if written:
                yield written

    def finish_bundle(self):
        self.shards.flush()


class ParquetFiles:
    """``writer(path, rows)`` for :class:`FileShards`: one Parquet file with ``schema``."""

    def __init__(self, schema: pa.Schema):
        self.schema = schema

    def __call__(self, path: Path, rows: list[dict]) -> None:
        pq.write_table(pa.Table.from_pylist(rows, schema=self.schema), path)


def _write_json_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines))


def write_tfrecords(path: Path, records: list[bytes]) -> None:
    """``writer(path, rows)`` for :class:`FileShards`: serialized records, gzipped TFRecord."""
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for record in records:
            writer.write(record)


class WriteParquet(beam.PTransform):
    """Rows (dicts) -> Parquet files ``directory/part-DIGEST.parquet`` with ``schema``; with
    ``rows_of``, elements -> their ``rows_of(element)`` rows (:class:`WriteFiles`)."""

    def __init__(self, directory: Path, schema: pa.Schema, rows_per_file: int = ROWS_PER_FILE,
                 rows_of: Callable[[object], Iterable] | None = None):
        super().__init__()
        self.directory, self.schema, self.rows_per_file = directory, schema, rows_per_file
        self.rows_of = rows_of

    def expand(self, rows):
        return rows | "Files" >> beam.ParDo(WriteFiles(
            str(self.directory), ParquetFiles(self.schema), ".parquet",
            rows_per_file=self.rows_per_file, rows_of=self.rows_of))


class WriteJsonLines(beam.PTransform):
    """Strings (one JSON document each) -> ``directory/PREFIX-DIGEST.jsonl``."""

    def __init__(self, directory: Path, prefix: str = "records"):
        super().__init__()
        self.directory, self.prefix = directory, prefix

    def expand(self, lines):
        return lines | "Files" >> beam.ParDo(WriteFiles(
            str(self.directory), _write_json_lines, ".jsonl", prefix=self.prefix))


class WriteTfRecords(beam.PTransform):
    """Serialized records -> gzipped TFRecord files ``directory/part-DIGEST.tfrecord.gz``."""

    def __init__(self, directory: Path):
        super().__init__()
        self.directory = directory

    def expand(self, records):
        return records | "Files" >> beam.ParDo(WriteFiles(
            str(self.directory), write_tfrecords, ".tfrecord.gz"))


class Tally(beam.PTransform):
    """(counter, n, source) triples -> the ``_tally`` table under ``directory`` (sum them with
    :func:`read_tally`)."""

    def __init__(self, directory: Path):
        super().__init__()
        self.directory = directory

    def expand(self, pairs):
        return (pairs
                | "Rows" >> beam.MapTuple(
                    lambda name, n, source: {"counter": name, "value": int(n), "source": source})
                | "Write" >> WriteParquet(self.directory / TALLY, TALLY_SCHEMA))


class Commit(beam.PTransform):
    """The pipeline's last step: it consumes the outputs of every sink and emits nothing.

    A runner that computes only the graph behind the last transform (Beam 2.77's DaskRunner
    does) then still runs every sink."""

    def expand(self, written: Iterable[beam.PCollection]):
        return (tuple(written)
                | "AllSinks" >> beam.Flatten()
                | "Done" >> beam.FlatMap(lambda _name: ()))


def read_tally(directory: Path) -> dict[str, int]:
    """The counters of a tally written by :class:`Tally` under ``directory``, summed."""
    totals: dict[str, int] = {}
    for path in sorted((directory / TALLY).glob("*.parquet")):
        table = pq.read_table(path)
        for name, value in zip(table.column("counter").to_pylist(),
                               table.column("value").to_pylist(), strict=True):
            totals[name] = totals.get(name, 0) + value
    return totals


def count_json_lines(directory: Path, key: str) -> dict[str, int]:
    """Per value of ``key``: how many JSON lines under ``directory`` have it."""
    counts: dict[str, int] = {}
    for path in sorted(directory.glob("*.jsonl")):
        with path.open() as lines:
            for line in lines:
                if line.strip():
                    value = json.loads(line).get(key)
                    counts[value] = counts.get(value, 0) + 1
    return counts


__all__ = ["Commit", "FileShards", "ParquetFiles", "ROWS_PER_FILE", "TALLY", "Tally",
           "WriteFiles", "WriteJsonLines", "WriteParquet", "WriteTfRecords", "count_json_lines",
           "read_tally", "write_tfrecords"]
