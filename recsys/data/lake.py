"""The lake: append-only Parquet tables for events (partitioned by UTC event date), items and
users, with validation, idempotent writes and dead-letter files.

Layout::

    LAKE/_lake.json                                  format and schema versions
    LAKE/events/event_date=YYYY-MM-DD/part-<run>.parquet
    LAKE/items/part-<run>.parquet                    catalogue versions, latest wins
    LAKE/users/part-<run>.parquet
    LAKE/_dead_letter/<table>/<run>.jsonl            rejected records with reasons

Guarantees:
* Files are only ever added, each written under a temporary name and renamed into place, so a
  reader never sees a partial file and a crash leaves no half-written data.
* Writing the same input twice adds nothing: events are deduplicated by ``event_id`` within the
  event-date partition (an event's id fixes its timestamp); catalogue rows are added only when an
  id is new or its content changed, and readers see the latest version of each id.
* Every rejected record is in a dead-letter file. If the rejected share of one input exceeds
  ``max_bad_fraction``, nothing of that input is written and BadRecordRatioError says so.
* Writers of one lake are serialised with a file lock.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import uuid
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from recsys.data.dead_letter import Locator, write_dead_letter
from recsys.data.rules import ValidationPolicy
from recsys.data.schemas import (
    DECISIONS,
    EVENTS,
    EXPOSURES,
    INGESTED_AT,
    ITEMS,
    PARTITIONED,
    SCHEMA_VERSION,
    TABLES,
    USERS,
    TableSpec,
)
from recsys.data.validation import Input, Rejection, row_fingerprints, validate
from recsys.errors import BadRecordRatioError, LakeError

LAKE_FORMAT = "recsys-lake"
LAKE_FORMAT_VERSION = 1
EVENT_DATE = "event_date"
KNOWN_PARTITIONS = 4  # day partitions whose event ids a Lake remembers
EVENT_PARTITIONING = ds.partitioning(pa.schema([(EVENT_DATE, pa.date32())]), flavor="hive")


@dataclass
class WriteReport:
    """What one write did with its input. ``received`` = written + every other count."""

    table: str
    source: str
    received: int = 0
    written: int = 0
    already_in_lake: int = 0
    duplicates_in_input: int = 0
    rejected: int = 0
    dead_letter: Path | None = None
    partitions: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"{self.table} from {self.source}: received {self.received:,}, "
                f"written {self.written:,}, already in lake {self.already_in_lake:,}, "
                f"duplicates in input {self.duplicates_in_input:,}, rejected {self.rejected:,}")
        if self.dead_letter:
            text += f" (reasons in {self.dead_letter})"
        return text


def _run_id() -> str:
    now = dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"


class Lake:
    """A lake rooted at a directory; see the module docstring for its guarantees."""

    def __init__(self, root: Path, create: bool = False):
        self.root = Path(root)
        meta_path = self.root / "_lake.json"
        if not meta_path.exists():
            if not create:
                raise LakeError(f"{self.root} is not a recsys lake (no _lake.json); create one "
                                "with `recsys data generate` or `recsys data import-movielens`")
            if self.root.exists() and any(self.root.iterdir()):
                raise LakeError(f"{self.root} exists, is not empty and is not a recsys lake; "
                                "choose an empty or new directory")
            self.root.mkdir(parents=True, exist_ok=True)
            meta = {"format": LAKE_FORMAT, "format_version": LAKE_FORMAT_VERSION,
                    "schema_versions": {name: SCHEMA_VERSION for name in TABLES}}
            _atomic_write_text(meta_path, json.dumps(meta, indent=2))
        self._check_meta(meta_path)
        self._known: OrderedDict[Path, tuple[set[str], set[str]]] = OrderedDict()

    @staticmethod
    def _check_meta(path: Path) -> None:
        try:
            meta = json.loads(path.read_text())
            fmt, version, schemas = meta["format"], meta["format_version"], meta["schema_versions"]
            newer = {name: v for name, v in schemas.items() if int(v) > SCHEMA_VERSION}
            version = int(version)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise LakeError(f"{path} is corrupt ({exc!r}); it must be the JSON recsys wrote"
                            ) from exc
        if fmt != LAKE_FORMAT:
            raise LakeError(f"{path} says format {fmt!r}, expected {LAKE_FORMAT!r}")
        if version > LAKE_FORMAT_VERSION or newer:
            raise LakeError(f"{path.parent} was written by a newer recsys (format {version}, "
                            f"schemas {schemas}); upgrade recsys to read it")

    # -- writing ---------------------------------------------------------------------------

    @contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.root / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def write_events(self, data: Input, source: str, **options) -> WriteReport:
        return self._write(EVENTS, data, source, **options)

    def write_items(self, data: Input, source: str, **options) -> WriteReport:
        return self._write(ITEMS, data, source, **options)

    def write_users(self, data: Input, source: str, **options) -> WriteReport:
        return self._write(USERS, data, source, **options)

    def write_exposures(self, data: Input, source: str, **options) -> WriteReport:
        """What the service showed (one row per item of an answer), partitioned by day like
        events and deduplicated by ``exposure_id``."""
        return self._write(EXPOSURES, data, source, **options)

    def write_decisions(self, data: Input, source: str, **options) -> WriteReport:
        """What exploring policies drew from and drew (one row per answer), partitioned by
        day and deduplicated by ``request_id``."""
        return self._write(DECISIONS, data, source, **options)

    def _write(
        self,
        spec: TableSpec,
        data: Input,
        source: str,
        policy: ValidationPolicy | None = None,
        max_bad_fraction: float = 0.05,
        prior_rejections: Sequence[Rejection] = (),
        locate: Locator | None = None,
    ) -> WriteReport:
        """Validate and append ``data``; ``prior_rejections`` are records a parser already
        refused (they count towards the bad fraction and go to the same dead-letter file)."""
        result = validate(data, spec, policy)
        report = WriteReport(spec.name, source)
        rejected = [*prior_rejections, *result.rejected]
        report.received = result.received + len(prior_rejections)
        report.duplicates_in_input = result.duplicates
        report.rejected = len(rejected)
        with self._lock():
            run = _run_id()  # under the lock: file order is write order (latest row wins)
            if rejected:
                report.dead_letter = self.root / "_dead_letter" / spec.name / f"{run}.jsonl"
                write_dead_letter(report.dead_letter, spec.name, source, rejected, locate)
            if report.received and report.rejected / report.received > max_bad_fraction:
                error = BadRecordRatioError(
                    f"{report.rejected:,} of {report.received:,} {spec.name} records from "
                    f"{source} are invalid ({report.rejected / report.received:.1%} > "
                    f"--max-bad-fraction {max_bad_fraction:.1%}); nothing was written. "
                    f"Reasons per record: {report.dead_letter}")
                error.report = report  # what was counted, for callers writing in parts
                raise error
            table = result.table
            if spec in PARTITIONED:
                self._append_partitioned(spec, table, run, report)
            else:
                self._append_catalogue(spec, table, run, report)
        return report

    def _append_partitioned(self, spec: TableSpec, table: pa.Table, run: str,
                            report: WriteReport) -> None:
        """Append rows to their day's partition, leaving out keys the partition holds."""
        if not table.num_rows:
            return
        table = table.sort_by([("timestamp", "ascending"), (spec.key, "ascending")])
        micros = pc.cast(table.column("timestamp"), pa.int64()).to_numpy()
        days = np.floor_divide(micros, 86_400_000_000)
        starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
        ends = np.r_[starts[1:], len(days)]
        ingested_type = spec.schema.field(INGESTED_AT).type
        ingested = pa.scalar(dt.datetime.now(dt.timezone.utc), type=ingested_type).value
        for start, end in zip(starts, ends, strict=True):
            day = dt.date(1970, 1, 1) + dt.timedelta(days=int(days[start]))
            part = table.slice(start, end - start)
            part_dir = self.root / spec.name / f"{EVENT_DATE}={day.isoformat()}"
            known = self._known_keys(part_dir, spec.key)
            if known:
                seen = pa.array([k in known for k in part.column(spec.key).to_pylist()])
                report.already_in_lake += int(pc.sum(seen).as_py() or 0)
                part = part.filter(pc.invert(seen))
            if not part.num_rows:
                continue
            stamp = pa.array(np.full(part.num_rows, ingested), type=pa.int64()).cast(ingested_type)
            part = part.append_column(pa.field(INGESTED_AT, ingested_type, nullable=False), stamp)
            target = part_dir / f"part-{run}.parquet"
            _atomic_write_parquet(part.cast(spec.schema), target)
            files, ids = self._known[part_dir]
            files.add(target.name)
            ids.update(part.column(spec.key).to_pylist())
            report.written += part.num_rows
            report.partitions.append(day.isoformat())

    def _append_catalogue(self, spec: TableSpec, table: pa.Table, run: str,
                          report: WriteReport) -> None:
        current = self.read(spec.name)
        if current.num_rows and table.num_rows:
            current = current.drop_columns([INGESTED_AT])
            known = pc.is_in(table.column(spec.key), value_set=current.column(spec.key))
            known_np = np.asarray(known.to_numpy(zero_copy_only=False), dtype=bool)
            if known_np.any():
                incoming = table.filter(known)
                old = current.filter(pc.is_in(current.column(spec.key),
                                              value_set=incoming.column(spec.key)))
                old_print = pd.Series(row_fingerprints(old), index=old.column(spec.key).to_pandas())
                new_keys = incoming.column(spec.key).to_pandas()
                unchanged = new_keys.map(old_print).to_numpy() == row_fingerprints(incoming)
                drop = np.zeros(table.num_rows, dtype=bool)
                drop[np.flatnonzero(known_np)[unchanged]] = True
                report.already_in_lake = int(drop.sum())
                table = table.filter(pa.array(~drop))
        if not table.num_rows:
            return
        ingested = dt.datetime.now(dt.timezone.utc)
        table = table.append_column(
            pa.field(INGESTED_AT, spec.schema.field(INGESTED_AT).type, nullable=False),
            pa.array([ingested] * table.num_rows, type=spec.schema.field(INGESTED_AT).type))
        target = self.root / spec.name / f"part-{run}.parquet"
        _atomic_write_parquet(table.cast(spec.schema), target)
        report.written = table.num_rows

    def _known_keys(self, part_dir: Path, key: str) -> set[str]:
        """The keys (event or exposure ids) a day partition holds. Files are immutable once
        written, so only files not read before are read (a worker appending small batches does
        not re-read the day); the ``KNOWN_PARTITIONS`` latest partitions used are remembered."""
        files, ids = self._known.pop(part_dir, (set(), set()))
        for path in sorted(part_dir.glob("part-*.parquet")):
            if path.name not in files:
                ids.update(pq.read_table(path, columns=[key]).column(0).to_pylist())
                files.add(path.name)
        self._known[part_dir] = (files, ids)
        while len(self._known) > KNOWN_PARTITIONS:
            self._known.popitem(last=False)
        return ids

    # -- reading ---------------------------------------------------------------------------

    def events_dataset(self) -> ds.Dataset:
        """All event partitions as a pyarrow dataset with an ``event_date`` partition column."""
        return self.partitioned_dataset(EVENTS)

    def partitioned_dataset(self, spec: TableSpec) -> ds.Dataset:
        """A table partitioned by day (events, exposures) as a pyarrow dataset with an
        ``event_date`` partition column."""
        path = self.root / spec.name
        schema = spec.schema.append(pa.field(EVENT_DATE, pa.date32()))
        if not path.exists():
            return ds.dataset(schema.empty_table())
        return ds.dataset(path, format="parquet", partitioning=EVENT_PARTITIONING, schema=schema)

    def read(self, table: str, columns: list[str] | None = None) -> pa.Table:
        """A whole table; for items and users only the latest version of each id."""
        spec = TABLES[table]
        if spec in PARTITIONED:
            return self.partitioned_dataset(spec).to_table(columns=columns)
        files = sorted((self.root / spec.name).glob("part-*.parquet"))
        if not files:
            return spec.schema.empty_table().select(columns or spec.schema.names)
        data = pa.concat_tables([pq.read_table(f, schema=spec.schema) for f in files])
        if len(files) > 1:
            keys = data.column(spec.key).to_pandas()
            latest = np.flatnonzero(~keys.duplicated(keep="last").to_numpy())
            data = data.take(latest)
        return data.select(columns) if columns else data




def _atomic_write_parquet(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    tmp.write_text(text)
    os.replace(tmp, path)
