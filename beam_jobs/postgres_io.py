"""A Beam source over the production profile's PostgreSQL event log (the ``events`` and
``items`` tables the stream worker appends to, see ``stream_worker/postgres_events.py``).

Guarantees:
* Rows come in exactly the format of :func:`beam_jobs.lake_io.table_rows` on the lake's table
  (timestamps as integer microseconds UTC, floats rounded to float32 as the lake stores them,
  lists as lists), so the lake's parsers apply unchanged.
* The table is read in ``splits`` disjoint parts (by a hash of its key), each by a DoFn with
  its own connection, so any runner reads them in parallel; each row is read at most once.
  Rows committed while the job reads may or may not be included.
* A missing schema or table gives no rows (the stream may not have written yet), logged.
* A connection failure raises :class:`SourceError` naming the host and database, never the
  password.
* No password travels with the pipeline: ``--event_log_dsn`` refuses a DSN that holds one
  (runners show and log their options, and pickle them into the job). The password comes
  from libpq's environment where the pipeline runs (PGPASSWORD, or a password file named by
  PGPASSFILE, ~/.pgpass by default), or the whole DSN from the environment variable
  ``--event_log_dsn_env`` names, read when a worker connects.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Iterator

import apache_beam as beam
import psycopg
import pyarrow as pa
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from beam_jobs.lake_io import NAMESPACE, RowBatch, table_rows
from recsys.data.schemas import TableSpec
from recsys.errors import ConfigError, SourceError

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 10
FETCH_ROWS = 5_000


@dataclass(frozen=True)
class EventLogSource:
    """Where the event log is: a libpq connection string without a password (``dsn``), or the
    name of the environment variable that holds one (``dsn_env``: it may hold a password, and
    is read where the pipeline runs), and the schema holding its tables."""

    dsn: str | None = field(repr=False)
    schema: str
    dsn_env: str | None = None

    def __post_init__(self):
        flag = "--event_log_dsn_env" if self.dsn_env else "--event_log_dsn"
        if self.dsn_env and self.dsn:
            raise ConfigError("give --event_log_dsn or --event_log_dsn_env, not both")
        if self.dsn_env and not os.environ.get(self.dsn_env, "").strip():
            raise ConfigError(f"--event_log_dsn_env names ${self.dsn_env}, which is not set "
                              "here; set it to the event log's libpq connection string")
        if not self._dsn() or not self._dsn().strip():
            raise ConfigError("--event_log_dsn is empty; give the libpq connection string of "
                              "the PostgreSQL database holding the event log")
        if not self.schema or not self.schema.strip():
            raise ConfigError("--event_log_schema is empty; give the PostgreSQL schema the "
                              "stream worker writes its events and items to")
        try:
            params = conninfo_to_dict(self._dsn())
        except psycopg.ProgrammingError:
            # libpq's message may quote parts of the string, the password among them
            raise ConfigError(f"{flag} is not a PostgreSQL connection string; give "
                              "'host=H port=P dbname=D user=U' or "
                              "'postgresql://U@H:P/D'") from None
        if params.get("password") and not self.dsn_env:
            raise ConfigError(
                "--event_log_dsn holds a password, which would travel with the pipeline's "
                "options (runners show, log and ship them); leave it out and give it to libpq "
                "where the pipeline runs (PGPASSWORD, or a password file: PGPASSFILE, "
                "~/.pgpass), or put the whole DSN in an environment variable and name it with "
                "--event_log_dsn_env")

    def _dsn(self) -> str:
        return os.environ.get(self.dsn_env, "") if self.dsn_env else (self.dsn or "")

    def __repr__(self) -> str:
        return f"EventLogSource({self.where} schema={self.schema})"

    @property
    def where(self) -> str:
        """The DSN's host, port, database and user, for messages (no password)."""
        params = conninfo_to_dict(self._dsn())
        return " ".join(f"{key}={params.get(key) or '(default)'}"
                        for key in ("host", "port", "dbname", "user"))

    def connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self._dsn(), connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise SourceError(f"cannot connect to the PostgreSQL event log ({self.where}): "
                              f"{reason}; check "
                              f"{'$' + self.dsn_env if self.dsn_env else '--event_log_dsn'}"
                              ) from exc


def _exists(source: EventLogSource, table: str) -> bool:
    with source.connect() as conn:
        found = conn.execute("SELECT to_regclass(format('%%I.%%I', %s::text, %s::text))",
                             (source.schema, table)).fetchone()[0]
    return found is not None


class _ReadSplit(beam.DoFn):
    """split number -> the table's rows whose key hashes to it, as RowBatches."""

    def __init__(self, source: EventLogSource, spec: TableSpec, splits: int):
        self.source, self.spec, self.splits = source, spec, splits
        self.read = beam.metrics.Metrics.counter(NAMESPACE, f"event_log_{spec.name}_read")

    def process(self, split: int):
        for batch in read_batches(self.source, self.spec, split, self.splits):
            self.read.inc(len(batch.rows))
            yield batch


def read_batches(source: EventLogSource, spec: TableSpec, split: int = 0,
                 splits: int = 1) -> Iterator[RowBatch]:
    """The rows of ``spec``'s table whose key hashes to ``split`` of ``splits`` (all of them
    by default), as RowBatches; no rows if the table does not exist."""
    if not _exists(source, spec.name):
        return
    schema = pa.schema([f.with_nullable(True) for f in spec.schema])
    query = sql.SQL("SELECT {} FROM {}.{} WHERE mod(abs(hashtext({})::bigint), %s) = %s"
                    ).format(sql.SQL(", ").join(map(sql.Identifier, schema.names)),
                             sql.Identifier(source.schema),
                             sql.Identifier(spec.name), sql.Identifier(spec.key))
    with source.connect() as conn, conn.cursor(name=f"recsys_split_{split}") as cur:
        cur.execute(query, (splits, split))
        for number, batch in enumerate(iter(lambda: cur.fetchmany(FETCH_ROWS), [])):
            yield RowBatch(
                f"{source.schema}.{spec.name}#{split}/{splits}#{number}",
                list(table_rows(pa.Table.from_pylist(
                    [dict(zip(schema.names, row, strict=True)) for row in batch],
                    schema=schema))))


def has_rows(source: EventLogSource, spec: TableSpec) -> bool:
    """Whether the table exists and holds at least one row."""
    if not _exists(source, spec.name):
        return False
    query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {}.{})").format(
        sql.Identifier(source.schema), sql.Identifier(spec.name))
    with source.connect() as conn:
        return bool(conn.execute(query).fetchone()[0])


def latest_timestamp_us(source: EventLogSource, spec: TableSpec) -> int | None:
    """max(timestamp) of the table in microseconds, None if it is empty or missing."""
    if not _exists(source, spec.name):
        return None
    query = sql.SQL("SELECT (extract(epoch FROM max({})) * 1000000)::bigint FROM {}.{}").format(
        sql.Identifier("timestamp"), sql.Identifier(source.schema), sql.Identifier(spec.name))
    with source.connect() as conn:
        return conn.execute(query).fetchone()[0]


class ReadEventLogBatches(beam.PTransform):
    """The rows of one event-log table (``spec.name`` in ``source.schema``) as RowBatches;
    see the module docstring. Connects once when the pipeline is built, to fail early and to
    skip a missing table."""

    def __init__(self, source: EventLogSource, spec: TableSpec, splits: int = 8):
        super().__init__()
        if splits < 1:
            raise ConfigError(f"splits must be >= 1, got {splits}")
        self.source, self.spec, self.splits = source, spec, splits

    def expand(self, pbegin):
        if not _exists(self.source, self.spec.name):
            log.warning("event log: no table %s.%s at %s (has the stream worker written "
                        "yet?); reading no rows from it", self.source.schema, self.spec.name,
                        self.source.where)
            return pbegin | "Empty" >> beam.Create([])
        return (pbegin
                | "Splits" >> beam.Create(range(self.splits))
                | "Spread" >> beam.Reshuffle()
                | "Read" >> beam.ParDo(_ReadSplit(self.source, self.spec, self.splits)))


class ReadEventLogTable(beam.PTransform):
    """The rows of one event-log table (see :class:`ReadEventLogBatches`)."""

    def __init__(self, source: EventLogSource, spec: TableSpec, splits: int = 8):
        super().__init__()
        self.batches = ReadEventLogBatches(source, spec, splits)

    def expand(self, pbegin):
        return (pbegin
                | "Batches" >> self.batches
                | "Rows" >> beam.FlatMap(lambda batch: batch.rows))


__all__ = ["EventLogSource", "ReadEventLogBatches", "ReadEventLogTable", "has_rows",
           "latest_timestamp_us", "read_batches"]
