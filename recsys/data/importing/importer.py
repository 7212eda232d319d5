"""Import event logs and catalogues of any shape into the lake, streamed in batches.

Guarantees of :func:`import_data`:

* Items, then users, then events are imported, each source file in the order given, in
  batches of ``batch_rows``; memory is bounded by a batch (plus the ids of the day
  partitions the lake remembers for deduplication).
* Every file's columns are checked against the mapping before anything is written; a mapped
  column a file lacks or a required field nothing fills is refused naming it
  (:class:`~recsys.errors.SchemaError`).
* Every batch goes through the lake's own validation, deduplication and dead letters, with
  each rejected record's ``file:record`` location. Importing the same sources again adds
  nothing (events are deduplicated by id; build ids with ``event_id_from`` when the source
  has none).
* ``max_bad_fraction`` holds for the rejected share of everything read so far of a table: the
  batch that would take it over the limit is not written and the import stops with
  :class:`~recsys.errors.BadRecordRatioError` saying where. Batches before it stay written (a
  re-import after fixing the mapping adds only the rest); ``--dry-run`` checks first.
* Users and items that the lake's events name but its catalogue lacks get a row with only
  their id (existing rows are never overwritten by such a row).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from recsys.data.importing.mapping import TABLE_SPECS, ImportMapping
from recsys.data.importing.sources import (
    SourceBatch,
    columns_of,
    expand,
    format_of,
    iter_batches,
    sql_batches,
    sql_columns,
)
from recsys.data.importing.transform import MappedBatch, check_columns, map_batch
from recsys.data.lake import Lake, WriteReport
from recsys.errors import BadRecordRatioError, SchemaError

log = logging.getLogger(__name__)
TABLE_ORDER = ("items", "users", "events")


@dataclass(frozen=True)
class Sources:
    """What to import: paths or globs per table, an optional SQL query for events, how to
    read the files."""

    events: tuple[str, ...] = ()
    items: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    events_sql: tuple[str, str] | None = None  # (DSN, query)
    format: str | None = None
    csv_delimiter: str = ","

    def of(self, table: str) -> tuple[str, ...]:
        return getattr(self, table)

    def tables(self) -> list[str]:
        return [t for t in TABLE_ORDER if self.of(t) or (t == "events" and self.events_sql)]


@dataclass
class TableImport:
    """What an import did with one table, over all its sources and batches."""

    table: str
    sources: list[str] = field(default_factory=list)
    received: int = 0
    written: int = 0
    already_in_lake: int = 0
    duplicates_in_input: int = 0
    rejected: int = 0
    dropped: int = 0
    dead_letters: list[Path] = field(default_factory=list)

    def add(self, report: WriteReport) -> None:
        self.received += report.received
        self.written += report.written
        self.already_in_lake += report.already_in_lake
        self.duplicates_in_input += report.duplicates_in_input
        self.rejected += report.rejected
        if report.dead_letter:
            self.dead_letters.append(report.dead_letter)

    def summary(self) -> str:
        shown = ", ".join(self.sources[:3]) + (f" and {len(self.sources) - 3} more"
                                               if len(self.sources) > 3 else "")
        text = (f"{self.table} from {shown}: received {self.received:,}, written "
                f"{self.written:,}, already in lake {self.already_in_lake:,}, duplicates in "
                f"input {self.duplicates_in_input:,}, rejected {self.rejected:,}")
        if self.dropped:
            text += f", dropped by the mapping {self.dropped:,}"
        if len(self.dead_letters) == 1:
            text += f" (reasons in {self.dead_letters[0]})"
        elif self.dead_letters:
            text += (f" (reasons in {len(self.dead_letters)} files in "
                     f"{self.dead_letters[0].parent})")
        return text


@dataclass
class ImportReport:
    tables: dict[str, TableImport]
    derived: list[WriteReport]

    def summaries(self) -> list[str]:
        return [*(t.summary() for t in self.tables.values()),
                *(d.summary() for d in self.derived if d.received)]


def plan_sources(sources: Sources, mapping: ImportMapping, table: str
                 ) -> list[tuple[str, str, bool]]:
    """[(file, format, per_batch)] of a table's files, each file's columns checked against
    the mapping here, before anything is read: a CSV's header, a Parquet file's schema, the
    keys of a JSON-lines file's first 1,000 objects, the columns of the SQL query. For JSON
    lines and SQL (``per_batch``), each batch's own columns are mapped, a mapped column
    absent from a batch being null there."""
    spec, table_mapping = TABLE_SPECS[table], mapping.table(table)
    planned = []
    for path in expand(list(sources.of(table))):
        fmt = format_of(path, sources.format)
        columns = columns_of(path, fmt, sources.csv_delimiter)
        if columns or fmt != "jsonl":  # JSON lines with no object at first: per batch
            check_columns(spec, table_mapping, columns, path)
        planned.append((path, fmt, fmt == "jsonl"))
    if table == "events" and sources.events_sql:
        check_columns(spec, table_mapping, sql_columns(*sources.events_sql),
                      "the --events-sql query")
    return planned


def _batches(sources: Sources, table: str, planned, batch_rows: int
             ) -> Iterator[tuple[SourceBatch, bool]]:
    for path, fmt, per_batch in planned:
        for batch in iter_batches(path, fmt, batch_rows, sources.csv_delimiter):
            yield batch, per_batch
    if table == "events" and sources.events_sql:
        yield from ((b, True) for b in sql_batches(*sources.events_sql, rows=batch_rows))


def _with_absent_columns(batch: SourceBatch, columns: list[str]) -> SourceBatch:
    """The batch with each of ``columns`` it lacks as nulls (a JSON key no object of the
    batch has, a query's column that is null throughout)."""
    table = batch.table
    for name in columns:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, pa.string()))
    return replace(batch, table=table)


def mapped_batches(sources: Sources, mapping: ImportMapping, table: str, batch_rows: int,
                   planned: list[tuple[str, str, bool]] | None = None
                   ) -> Iterator[tuple[SourceBatch, MappedBatch]]:
    """Each batch of a table's sources with its mapped rows; ``planned``: the table's
    :func:`plan_sources` when already made (else made here)."""
    spec, table_mapping = TABLE_SPECS[table], mapping.table(table)
    if planned is None:
        planned = plan_sources(sources, mapping, table)
    resolved: dict[str, str] = {}
    source = None
    for batch, per_batch in _batches(sources, table, planned, batch_rows):
        if per_batch or batch.source != source:  # each file's own columns
            source = batch.source
            named = table_mapping.sources(spec, batch.table.column_names)
            wanted = [*named.values(), *getattr(table_mapping, "event_id_from", ())]
            batch = _with_absent_columns(batch, wanted)
            resolved = check_columns(spec, table_mapping, batch.table.column_names,
                                     batch.source)
        yield batch, map_batch(batch, spec, table_mapping, resolved)


def import_data(lake: Lake, sources: Sources, mapping: ImportMapping, *,
                batch_rows: int = 100_000, max_bad_fraction: float = 0.05,
                progress: bool = True) -> ImportReport:
    """Import ``sources`` into ``lake`` by ``mapping`` (see the module guarantees)."""
    tables = sources.tables()
    if not tables:
        raise SchemaError("nothing to import: give --events, --items, --users or --events-sql")
    # every source's columns, before anything is written (each file's once)
    plans = {table: plan_sources(sources, mapping, table) for table in tables}
    report = ImportReport({}, [])
    for table in tables:
        report.tables[table] = _import_table(lake, sources, mapping, table, plans[table],
                                             batch_rows, max_bad_fraction, progress)
    if "events" in tables:
        report.derived = add_missing_catalogue_rows(lake)
    return report


def _import_table(lake: Lake, sources: Sources, mapping: ImportMapping, table: str,
                  planned: list[tuple[str, str, bool]], batch_rows: int,
                  max_bad_fraction: float, progress: bool) -> TableImport:
    done = TableImport(table)
    write: Callable[..., WriteReport] = getattr(lake, f"write_{table}")
    bar = tqdm(unit=" rows", desc=table, disable=not progress, unit_scale=True)
    try:
        for batch, mapped in mapped_batches(sources, mapping, table, batch_rows, planned):
            if batch.source not in done.sources:
                done.sources.append(batch.source)
            prior = [*batch.rejected, *mapped.rejected]
            incoming = mapped.table.num_rows + len(prior)
            done.dropped += mapped.dropped
            if incoming:
                _write_batch(write, batch, mapped, prior, incoming, done, max_bad_fraction)
            bar.update(batch.table.num_rows + len(batch.rejected))
            bar.set_postfix(written=f"{done.written:,}", rejected=f"{done.rejected:,}",
                            refresh=False)
    finally:
        bar.close()
    log.info("%s", done.summary())
    return done


def _write_batch(write, batch: SourceBatch, mapped: MappedBatch, prior: list, incoming: int,
                 done: TableImport, max_bad_fraction: float) -> None:
    """Write one batch, holding the rejected share of everything read so far to the limit."""
    allowed = (max_bad_fraction * (done.received + incoming) - done.rejected) / incoming
    rows = mapped.rows
    try:
        report = write(mapped.table, batch.source, prior_rejections=prior,
                       locate=lambda i: batch.location(int(rows[i])),
                       max_bad_fraction=min(1.0, max(0.0, allowed)))
    except BadRecordRatioError as exc:
        counted: WriteReport | None = getattr(exc, "report", None)
        rejected = done.rejected + (counted.rejected if counted else 0)
        received = done.received + incoming
        where = counted.dead_letter if counted else None
        start = batch.location(0) if batch.table.num_rows else prior[0].location
        raise BadRecordRatioError(
            f"{rejected:,} of {received:,} {done.table} records read so far are invalid "
            f"({rejected / received:.1%} > --max-bad-fraction {max_bad_fraction:.1%}); the "
            f"import stopped at the batch from {start}, which was not written. "
            f"{done.written:,} records of earlier batches were written; importing again after "
            f"fixing the mapping or the data adds only what is missing. Reasons per record: "
            f"{where}") from exc
    done.add(report)


def _ids(lake: Lake, column: str) -> set[str]:
    """The distinct values of one events column, read batch by batch."""
    found: set[str] = set()
    for part in lake.events_dataset().to_batches(columns=[column]):
        found.update(pc.unique(part.column(0)).to_pylist())
    found.discard(None)
    return found


def add_missing_catalogue_rows(lake: Lake) -> list[WriteReport]:
    """A row with only the id for each user and item the events name and the catalogue
    lacks (see the module guarantees)."""
    reports = []
    for table, key in (("items", "item_id"), ("users", "user_id")):
        known = set(lake.read(table, columns=[key]).column(0).to_pylist())
        missing = sorted(_ids(lake, key) - known)
        write = getattr(lake, f"write_{table}")
        reports.append(write(pa.table({key: pa.array(missing, pa.string())}),
                             "the ids the events name without a catalogue row"))
    return reports


def head_rows(batches: Iterable[tuple[SourceBatch, MappedBatch]], rows: int
              ) -> Iterator[tuple[SourceBatch, MappedBatch]]:
    """The batches up to the one that reaches ``rows`` source rows."""
    seen = 0
    for batch, mapped in batches:
        yield batch, mapped
        seen += batch.table.num_rows + len(batch.rejected)
        if seen >= rows:
            return


__all__ = ["Sources", "TableImport", "ImportReport", "import_data", "plan_sources",
           "mapped_batches", "add_missing_catalogue_rows", "head_rows", "TABLE_ORDER"]
