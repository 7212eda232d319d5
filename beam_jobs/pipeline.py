"""The feature build: one Beam pipeline from the lake to feature tables, session sequences and
training examples.

    python -m beam_jobs.pipeline --lake LAKE --output OUT [--runner DirectRunner ...]
        [--event_log_dsn DSN --event_log_schema SCHEMA]

With ``--event_log_dsn``/``--event_log_schema`` it also reads the PostgreSQL event log the
production profile's stream worker appends to (``beam_jobs/postgres_io.py``): events are the
lake's and the log's, one copy per event id; items the latest row per id over both.

Standard ``PipelineOptions``: ``--runner`` picks the engine, ``--direct_running_mode``
multi_processing and ``--direct_num_workers`` parallelise the DirectRunner. Outputs (Parquet)::

    OUT/user_features/  OUT/item_features/  OUT/item_catalogue/  OUT/user_profile/
    OUT/user_session/   OUT/item_stream/  OUT/session_sequences/  OUT/training_examples/
    OUT/training_examples_tfrecord/  the same examples as gzipped tf.train.Example TFRecords
                        (with --tfrecord)
    OUT/_dead_letter/   bad records, one JSON line each, with the reason
    OUT/_run.json       counters of this run

A run writes into a staging directory and replaces the previous outputs only when it succeeded
and the share of bad records is within ``--max_bad_ratio``; otherwise it raises
:class:`BadRecordRatioError` and leaves the previous outputs as they were.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from beam_jobs.event_blocks import (
    DEFAULT_SHARDS,
    blocks_by_shard,
    group_blocks,
    item_of,
    user_of,
)
from beam_jobs.event_sources import read_user_blocks
from beam_jobs.item_features import item_feature_rows
from beam_jobs.item_stream import item_stream_row_of
from beam_jobs.lake_io import (
    DEAD_LETTER,
    NAMESPACE,
    batch_tally,
    read_items,
    read_latest,
)
from beam_jobs.lookups import ItemLookup, horizon_day
from beam_jobs.options import event_log_from_options, lake_and_output
from beam_jobs.outputs import SESSION_SEQUENCES, TRAINING_EXAMPLES
from beam_jobs.postgres_io import EventLogSource, ReadEventLogBatches, has_rows
from beam_jobs.shards import (
    Commit,
    FileShards,
    ParquetFiles,
    Tally,
    WriteJsonLines,
    WriteParquet,
    count_json_lines,
    read_tally,
    write_tfrecords,
)
from beam_jobs.tf_examples import to_tf_example
from beam_jobs.timeline import process_user
from recsys.data.records import Event, Item
from recsys.data.schemas import EVENTS, ITEMS
from recsys.errors import BadRecordRatioError, ConfigError, PipelineRunError, RecsysError
from recsys.features.config import FeatureConfig, PositiveRule
from recsys.features.rows import catalogue_row, profile_row
from recsys.features.tables import (
    FEATURE_TABLES,
    ITEM_CATALOGUE,
    ITEM_FEATURES,
    ITEM_STREAM,
    USER_FEATURES,
    USER_PROFILE,
    USER_SESSION,
)

log = logging.getLogger(__name__)
TFRECORD_DIR = "training_examples_tfrecord"
OUTPUT_SCHEMAS: dict[str, pa.Schema] = {
    **{name: table.arrow_schema() for name, table in FEATURE_TABLES.items()},
    "session_sequences": SESSION_SEQUENCES,
    "training_examples": TRAINING_EXAMPLES,
}


class FeatureJobOptions(PipelineOptions):
    """Options of the feature build (Beam style: underscores)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        defaults = FeatureConfig()
        rule = defaults.positive
        parser.add_argument("--history_length", type=int, default=defaults.history_length)
        parser.add_argument("--session_gap_s", type=int, default=defaults.session_gap_s)
        parser.add_argument("--split", default=defaults.split, help="none, temporal or last_one "
                            "(leave-last-one-out)")
        parser.add_argument("--test_fraction", type=float, default=defaults.test_fraction)
        parser.add_argument("--max_bad_ratio", type=float, default=defaults.max_bad_ratio)
        parser.add_argument("--positive_event_types", default=",".join(rule.event_types))
        parser.add_argument("--positive_min_dwell_s", type=float, default=rule.min_dwell_s)
        parser.add_argument("--positive_min_watch_fraction", type=float,
                            default=rule.min_watch_fraction)
        parser.add_argument("--positive_min_rating", type=float, default=rule.min_rating)
        parser.add_argument("--tfrecord", action="store_true",
                            help="also write the training examples as TFRecord")
        parser.add_argument("--shuffle_shards", type=int, default=DEFAULT_SHARDS,
                            help="events are grouped by user, then by item, in blocks over "
                                 "this many shards (the most tasks each grouping can use)")


def config_from_options(options: PipelineOptions) -> tuple[Path, Path, FeatureConfig]:
    """The typed configuration, checked; raises ConfigError naming a bad option."""
    opts = options.view_as(FeatureJobOptions)
    rule = PositiveRule(
        event_types=tuple(t.strip() for t in opts.positive_event_types.split(",") if t.strip()),
        min_dwell_s=opts.positive_min_dwell_s,
        min_watch_fraction=opts.positive_min_watch_fraction,
        min_rating=opts.positive_min_rating)
    cfg = FeatureConfig(history_length=opts.history_length, session_gap_s=opts.session_gap_s,
                        split=opts.split, test_fraction=opts.test_fraction,
                        max_bad_ratio=opts.max_bad_ratio, positive=rule)
    if opts.shuffle_shards < 1:
        raise ConfigError(f"--shuffle_shards must be at least 1, got {opts.shuffle_shards}")
    lake, out = lake_and_output(options)
    return lake, out, cfg


def _items(items: Mapping[str, Item] | ItemLookup) -> Mapping[str, Item]:
    return items.load() if isinstance(items, ItemLookup) else items


class WriteUserTables(beam.DoFn):
    """(user shard, blocks of its users' events) -> the per-user tables of every user in it,
    written where they are computed: session sequences, training examples (and their
    TFRecords), user features and session states. Emits (item shard, a block of the events
    handed on to the item tables), one per item shard hit (``beam_jobs/event_blocks.py``).

    The per-user rows are most of the job's data (every sequence row carries its history), so
    they never leave the task that makes them: on a cluster, passing them on to writer tasks
    meant pickling them between workers. ``items`` is a mapping or an :class:`ItemLookup`."""

    TABLES = {"session_sequences": "sequences", "training_examples": "examples",
              USER_FEATURES.name: "user_features"}

    def __init__(self, out: Path, items, horizon_day: int, cfg: FeatureConfig,
                 tfrecord: bool = False, item_shards: int = DEFAULT_SHARDS):
        self.out, self.items, self.horizon_day = str(out), items, horizon_day
        self.cfg, self.tfrecord, self.item_shards = cfg, tfrecord, item_shards
        self._shards: dict[str, FileShards] = {}

    def start_bundle(self):
        out = Path(self.out)
        self._shards = {table: FileShards(str(out / table), ParquetFiles(OUTPUT_SCHEMAS[table]),
                                          ".parquet")
                        for table in (*self.TABLES, USER_SESSION.name)}
        if self.tfrecord:
            self._shards[TFRECORD_DIR] = FileShards(str(out / TFRECORD_DIR), write_tfrecords,
                                                    ".tfrecord.gz")

    def process(self, keyed):
        _, blocks = keyed
        items = _items(self.items)
        handed_on: list[Event] = []
        for user_id, events in group_blocks(blocks, user_of):
            outputs = process_user(user_id, events, items, self.cfg, self.horizon_day)
            for table, part in self.TABLES.items():
                for row in getattr(outputs, part):
                    self._shards[table].add(row)
            if outputs.session_state is not None:
                self._shards[USER_SESSION.name].add(outputs.session_state)
            if self.tfrecord:
                for row in outputs.examples:
                    self._shards[TFRECORD_DIR].add(to_tf_example(row))
            handed_on.extend(outputs.feature_events)
        yield from blocks_by_shard(handed_on, item_of, self.item_shards)

    def finish_bundle(self):
        for shards in self._shards.values():
            shards.flush()


class WriteItemTables(beam.DoFn):
    """(item shard, blocks of its items' events) -> for every item in it, its
    ``item_features`` rows (``item_features.py``) and its ``item_stream`` row
    (``item_stream.py``), written where they are computed; emits nothing. ``items`` is a
    mapping or an :class:`ItemLookup`."""

    def __init__(self, out: Path, items, horizon_day: int, cfg: FeatureConfig):
        self.out, self.items, self.horizon_day, self.cfg = str(out), items, horizon_day, cfg
        self._shards: dict[str, FileShards] = {}

    def start_bundle(self):
        out = Path(self.out)
        self._shards = {table: FileShards(str(out / table), ParquetFiles(OUTPUT_SCHEMAS[table]),
                                          ".parquet")
                        for table in (ITEM_FEATURES.name, ITEM_STREAM.name)}

    def process(self, keyed):
        _, blocks = keyed
        items = _items(self.items)
        for item_id, events in group_blocks(blocks, item_of):
            item = items.get(item_id)
            for row in item_feature_rows(item_id, item, events, self.cfg, self.horizon_day):
                self._shards[ITEM_FEATURES.name].add(row)
            self._shards[ITEM_STREAM.name].add(
                item_stream_row_of(item_id, events, self.cfg.history_event_types))
        return ()

    def finish_bundle(self):
        for shards in self._shards.values():
            shards.flush()


class WriteTable(beam.PTransform):
    """Rows (dicts) -> Parquet files under ``out/table/`` (``beam_jobs/shards.py``); emits
    the names of the files it filled. With ``rows_of``, elements -> their ``rows_of(element)``
    rows, made by the step that writes them."""

    def __init__(self, out: Path, table: str, schema: pa.Schema | None = None,
                 rows_of: Callable[[object], Iterable] | None = None):
        super().__init__()
        self.out, self.table, self.rows_of = out, table, rows_of
        self.schema = schema if schema is not None else OUTPUT_SCHEMAS[table]

    def expand(self, rows):
        return rows | "Write" >> WriteParquet(self.out / self.table, self.schema,
                                              rows_of=self.rows_of)


def _catalogue_rows(records: list[Item]) -> list[dict]:
    return [catalogue_row(record) for record in records]


def _profile_rows(rows: list[dict]) -> list[dict]:
    return [profile_row(row) for row in rows]


def build(p: beam.Pipeline, lake: Path, out: Path, cfg: FeatureConfig,
          tfrecord: bool = False, event_log: EventLogSource | None = None,
          shards: int = DEFAULT_SHARDS) -> None:
    """Add the whole feature build to ``p`` (see the module docstring). The horizon and the
    item lookup are not side inputs (``beam_jobs/lookups.py``). Paths are made absolute: the
    workers of a cluster do not share the driver's working directory. Events are shuffled
    in blocks over ``shards`` user shards, then ``shards`` item shards
    (``beam_jobs/event_blocks.py``)."""
    lake, out = lake.resolve(), out.resolve()
    logged_events = logged_items = None
    tallies = []
    if event_log is not None:
        logged_events = p | "ReadEventLogEvents" >> ReadEventLogBatches(event_log, EVENTS)
        logged_items = p | "ReadEventLogItems" >> ReadEventLogBatches(event_log, ITEMS)
        tallies += [batch_tally(logged_events, "event_log_events_read"),
                    batch_tally(logged_items, "event_log_items_read")]
    # The union with the log deduplicates event by event; an empty log (the worker has not
    # written yet) is not worth that: the lake's batches go through whole.
    events = read_user_blocks(p, lake, logged_events if event_log is not None
                              and has_rows(event_log, EVENTS) else None, shards)
    tallies.append(events.tally)
    items = read_items(p, lake, logged_items, shards)
    item_lookup = ItemLookup(str(lake), event_log, out.name)
    horizon = horizon_day(lake, event_log)
    item_tables = (events.blocks
                   | "ByUserShard" >> beam.GroupByKey()
                   | "UserTables" >> beam.ParDo(
                       WriteUserTables(out, item_lookup, horizon, cfg, tfrecord, shards))
                   | "ByItemShard" >> beam.GroupByKey()
                   | "ItemTables" >> beam.ParDo(WriteItemTables(out, item_lookup, horizon, cfg)))
    users = read_latest(p, lake, "users", "user_id", shards=shards)

    # The catalogue's and the profiles' rows are made by the steps that write them (not
    # emitted by a step before: see WriteFiles).
    written = [item_tables,
               items.batches | f"Write{ITEM_CATALOGUE.name}" >> WriteTable(
                   out, ITEM_CATALOGUE.name, rows_of=_catalogue_rows),
               users | f"Write{USER_PROFILE.name}" >> WriteTable(
                   out, USER_PROFILE.name, rows_of=_profile_rows)]
    dead = ((events.dead_letter, items[DEAD_LETTER]) | "DeadLetters" >> beam.Flatten())
    written.append(dead | "WriteDeadLetters" >> WriteJsonLines(out / "_dead_letter"))
    written.append(tuple(tallies) | "Tallies" >> beam.Flatten() | "WriteTally" >> Tally(out))
    tuple(written) | "Commit" >> Commit()


def build_counters(staging: Path) -> dict[str, int]:
    """The counters of a finished build, from what it wrote (every runner; Beam's metrics are
    not collected by all): the tally, the dead letters per table, the catalogue's rows."""
    counters = read_tally(staging)
    bad = count_json_lines(staging / "_dead_letter", "table")
    counters["events_bad"] = bad.get("events", 0)
    counters["items_bad"] = bad.get("items", 0)
    catalogue = staging / ITEM_CATALOGUE.name
    counters["items_read"] = counters["items_bad"] + sum(
        pq.read_metadata(path).num_rows for path in catalogue.glob("*.parquet"))
    counters.setdefault("events_read", 0)
    return counters


@dataclass
class BuildResult:
    output: Path
    counters: dict[str, int]
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.counters.get("events_read", 0) / max(self.seconds, 1e-9)


def beam_counters(result) -> dict[str, int]:
    """The recsys counters of a finished Beam run (name -> committed value)."""
    metrics = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    return {m.key.metric.name: int(m.committed or 0) for m in metrics["counters"]}


def run(argv: Sequence[str] | None = None) -> BuildResult:
    """Run the feature build with Beam command-line options; see the module docstring."""
    options = PipelineOptions(argv)
    lake, out, cfg = config_from_options(options)
    event_log = event_log_from_options(options)
    staging = out.parent / f".{out.name}.staging-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    job = options.view_as(FeatureJobOptions)
    try:
        _run_pipeline(options, lambda p: build(
            p, lake, staging, cfg, tfrecord=job.tfrecord, event_log=event_log,
            shards=job.shuffle_shards), out)
        counters = build_counters(staging)
        read = counters.get("events_read", 0) + counters.get("items_read", 0)
        bad = counters.get("events_bad", 0) + counters.get("items_bad", 0)
        if read and bad / read > cfg.max_bad_ratio:
            kept = out.parent / f"{out.name}.failed-dead-letter"
            shutil.rmtree(kept, ignore_errors=True)
            shutil.move(str(staging / "_dead_letter"), kept)
            raise BadRecordRatioError(
                f"{bad:,} of {read:,} records are bad ({bad / read:.2%} > --max_bad_ratio "
                f"{cfg.max_bad_ratio:.2%}); the outputs in {out} were left unchanged. "
                f"Reasons per record: {kept}")
        seconds = time.perf_counter() - started
        (staging / "_run.json").write_text(json.dumps(
            {"counters": counters, "seconds": seconds, "config": repr(cfg),
             "event_log": repr(event_log) if event_log else None}, indent=2))
        _replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("feature build: %s in %.1fs", counters, seconds)
    return BuildResult(out, counters, seconds)


def _run_pipeline(options: PipelineOptions, construct, out: Path) -> None:
    """Build the pipeline with ``construct(p)`` and run it to the end; a failure of the run
    itself (not of our checks) becomes a PipelineRunError naming the runner."""
    try:
        with beam.Pipeline(options=options) as p:
            construct(p)
    except RecsysError:
        raise
    except Exception as exc:
        runner = options.view_as(StandardOptions).runner or "DirectRunner"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise PipelineRunError(
            f"the feature build failed on --runner {runner}: {type(exc).__name__}"
            f"{': ' + reason if reason else ''}. The outputs in {out} were left unchanged."
        ) from exc


def _replace(staging: Path, out: Path) -> None:
    """Move the staged tables into ``out``, replacing the previous ones table by table."""
    out.mkdir(parents=True, exist_ok=True)
    for table in [*OUTPUT_SCHEMAS, TFRECORD_DIR, "_dead_letter", "_run.json"]:
        new, old = staging / table, out / table
        trash = out / f".old-{table}-{uuid.uuid4().hex[:8]}"
        if old.exists():
            old.rename(trash)
        if new.exists():
            new.rename(old)
        if trash.exists():
            shutil.rmtree(trash) if trash.is_dir() else trash.unlink()


__all__ = ["BuildResult", "FeatureJobOptions", "WriteItemTables", "WriteTable", "WriteUserTables",
           "beam_counters",
           "build", "build_counters", "run"]

if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO)
    run(sys.argv[1:])
