"""The production profile's event log in PostgreSQL: the stream worker appends events and
catalogue rows there (the embedded profile appends to the lake instead), so the next batch run
trains on them.

Tables (in the offline store's schema), created if absent::

    events  (the lake's event columns + ingested_at; PRIMARY KEY event_id)
    exposures (the lake's exposure columns + ingested_at; PRIMARY KEY exposure_id)
    items   (the lake's item columns + ingested_at; PRIMARY KEY item_id, latest row wins)

A table made by an earlier version gets the columns added since (``ADD COLUMN IF NOT
EXISTS``: nullable, so its rows read as null there).

Events, exposures and decisions are appended with COPY into a temporary table and one
``INSERT ... SELECT`` from it.

Guarantees: appending an event id the table holds changes nothing (``ON CONFLICT DO
NOTHING``), so redelivered entries are harmless; a catalogue row replaces the item's row only
when its content differs; each call is one transaction. A connection that broke (the
server restarted) is dropped with the failed call's error and opened again by the next call.
"""

from __future__ import annotations

import pyarrow as pa

from recsys.data.schemas import DECISIONS, EVENTS, EXPOSURES, INGESTED_AT, ITEMS, TableSpec

_PG_TYPES = {"string": "TEXT", "float": "REAL", "double": "DOUBLE PRECISION",
             "int32": "INTEGER", "int64": "BIGINT", "timestamp[us, tz=UTC]": "TIMESTAMPTZ",
             "list<item: string>": "TEXT[]", "list<item: double>": "DOUBLE PRECISION[]",
             "list<item: int32>": "INTEGER[]"}


def _csv(table: pa.Table) -> bytes:
    """``table`` as CSV without a header, strings always quoted so that an empty string and a
    null (an empty unquoted field) stay apart."""
    import pyarrow.csv as csv

    sink = pa.BufferOutputStream()
    csv.write_csv(table, sink, csv.WriteOptions(include_header=False,
                                                quoting_style="all_valid"))
    return sink.getvalue().to_pybytes()


def _columns(spec: TableSpec) -> list[tuple[str, str]]:
    return [(f.name, _PG_TYPES[str(f.type)] + ("" if f.nullable else " NOT NULL"))
            for f in spec.schema]


class PostgresEventLog:
    def __init__(self, dsn: str, schema: str, password: str | None = None):
        """``password`` goes to the connection, never into ``dsn`` (None: libpq's PGPASSWORD
        or password file)."""
        self.dsn, self.schema = dsn, schema
        self._password = password or None
        self._conn = None
        self._ensure(self.conn)

    @property
    def conn(self):
        """The open connection (opened again if the last one broke)."""
        import psycopg

        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=10,
                                         **({"password": self._password}
                                            if self._password else {}))
        return self._conn

    def _ensure(self, conn) -> None:
        from psycopg import sql

        with conn.transaction():
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                sql.Identifier(self.schema)))
            for spec in (EVENTS, ITEMS, EXPOSURES, DECISIONS):
                conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {}.{} ({}, PRIMARY KEY "
                                          "({}))").format(
                    sql.Identifier(self.schema), sql.Identifier(spec.name),
                    sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t))
                                       for c, t in _columns(spec)),
                    sql.Identifier(spec.key)))
                for column, kind in _columns(spec):  # columns added since the table was made
                    if "NOT NULL" not in kind:
                        conn.execute(sql.SQL("ALTER TABLE {}.{} ADD COLUMN IF NOT EXISTS {} {}")
                                     .format(sql.Identifier(self.schema),
                                             sql.Identifier(spec.name),
                                             sql.Identifier(column), sql.SQL(kind)))

    def _write(self, spec: TableSpec, table: pa.Table, on_conflict: str) -> int:
        from psycopg import sql

        if not len(table):
            return 0
        names = [f.name for f in spec.schema if f.name != INGESTED_AT]
        rows = table.select(names).to_pylist()
        query = sql.SQL("INSERT INTO {}.{} ({}, {}) VALUES ({}, now()) {}").format(
            sql.Identifier(self.schema), sql.Identifier(spec.name),
            sql.SQL(", ").join(map(sql.Identifier, names)), sql.Identifier(INGESTED_AT),
            sql.SQL(", ").join(sql.Placeholder() * len(names)), sql.SQL(on_conflict))
        conn = self.conn
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(query, [tuple(r[n] for n in names) for r in rows])
            return cur.rowcount if spec is not ITEMS else len(rows)

    def _append(self, spec: TableSpec, table: pa.Table) -> int:
        """Append rows whose key the table does not hold: COPY into a temporary table, then
        one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``; returns how many were new."""
        from psycopg import sql

        if not len(table):
            return 0
        names = [f.name for f in spec.schema if f.name != INGESTED_AT]
        staging = sql.Identifier(f"recsys_staging_{spec.name}")
        columns = sql.SQL(", ").join(map(sql.Identifier, names))
        conn = self.conn
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE TEMPORARY TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE "
                                "ROWS").format(staging, sql.SQL(", ").join(
                                    sql.SQL("{} {}").format(sql.Identifier(c),
                                                            sql.SQL(t.replace(" NOT NULL", "")))
                                    for c, t in _columns(spec) if c != INGESTED_AT)))
            table = table.select(names)
            if any(pa.types.is_list(f.type) for f in table.schema):  # CSV has no arrays
                with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(staging,
                                                                       columns)) as copy:
                    for row in zip(*(table.column(n).to_pylist() for n in names)):
                        copy.write_row(row)
            else:  # written as CSV by Arrow: a null is an empty field, "" an empty string
                with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
                        staging, columns)) as copy:
                    copy.write(_csv(table))
            cur.execute(sql.SQL("INSERT INTO {}.{} ({}, {}) SELECT {}, now() FROM {} "
                                "ON CONFLICT ({}) DO NOTHING").format(
                sql.Identifier(self.schema), sql.Identifier(spec.name), columns,
                sql.Identifier(INGESTED_AT), columns, staging, sql.Identifier(spec.key)))
            return cur.rowcount

    def write_events(self, table: pa.Table) -> int:
        """Append events; returns how many were new."""
        return self._append(EVENTS, table)

    def write_exposures(self, table: pa.Table) -> int:
        """Append exposures; returns how many were new."""
        return self._append(EXPOSURES, table)

    def write_decisions(self, table: pa.Table) -> int:
        """Append decisions; returns how many were new."""
        return self._append(DECISIONS, table)

    def write_items(self, table: pa.Table) -> int:
        """Insert or replace catalogue rows whose content changed."""
        names = [f.name for f in ITEMS.schema if f.name not in (INGESTED_AT, ITEMS.key)]
        updates = ", ".join(f'"{n}" = EXCLUDED."{n}"' for n in names + [INGESTED_AT])
        changed = " OR ".join(f'items."{n}" IS DISTINCT FROM EXCLUDED."{n}"' for n in names)
        return self._write(ITEMS, table, f"ON CONFLICT (item_id) DO UPDATE SET {updates} "
                                         f"WHERE {changed}")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


__all__ = ["PostgresEventLog"]
