"""The production profile's event log in PostgreSQL: the stream worker appends events and
catalogue rows there (the embedded profile appends to the lake instead), so the next batch run
trains on them.

Tables (in the offline store's schema), created if absent::

    events  (the lake's event columns + ingested_at; PRIMARY KEY event_id)
    items   (the lake's item columns + ingested_at; PRIMARY KEY item_id, latest row wins)

Guarantees: appending an event id the table holds changes nothing (``ON CONFLICT DO
NOTHING``), so redelivered entries are harmless; a catalogue row replaces the item's row only
when its content differs; each call is one transaction.
"""

from __future__ import annotations

import pyarrow as pa

from recsys.data.schemas import EVENTS, INGESTED_AT, ITEMS, TableSpec

_PG_TYPES = {"string": "TEXT", "float": "REAL", "int32": "INTEGER",
             "timestamp[us, tz=UTC]": "TIMESTAMPTZ", "list<item: string>": "TEXT[]"}


def _columns(spec: TableSpec) -> list[tuple[str, str]]:
    return [(f.name, _PG_TYPES[str(f.type)] + ("" if f.nullable else " NOT NULL"))
            for f in spec.schema]


class PostgresEventLog:
    def __init__(self, dsn: str, schema: str):
        import psycopg

        self.schema = schema
        self.conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
        self._ensure()

    def _ensure(self) -> None:
        from psycopg import sql

        with self.conn.transaction():
            self.conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                sql.Identifier(self.schema)))
            for spec in (EVENTS, ITEMS):
                self.conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {}.{} ({}, PRIMARY KEY "
                                          "({}))").format(
                    sql.Identifier(self.schema), sql.Identifier(spec.name),
                    sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t))
                                       for c, t in _columns(spec)),
                    sql.Identifier(spec.key)))

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
        with self.conn.transaction(), self.conn.cursor() as cur:
            before = self._count(cur, spec)
            cur.executemany(query, [tuple(r[n] for n in names) for r in rows])
            return self._count(cur, spec) - before if spec is EVENTS else len(rows)

    def _count(self, cur, spec: TableSpec) -> int:
        from psycopg import sql

        cur.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(self.schema), sql.Identifier(spec.name)))
        return int(cur.fetchone()[0])

    def write_events(self, table: pa.Table) -> int:
        """Append events; returns how many were new."""
        return self._write(EVENTS, table, "ON CONFLICT (event_id) DO NOTHING")

    def write_items(self, table: pa.Table) -> int:
        """Insert or replace catalogue rows whose content changed."""
        names = [f.name for f in ITEMS.schema if f.name not in (INGESTED_AT, ITEMS.key)]
        updates = ", ".join(f'"{n}" = EXCLUDED."{n}"' for n in names + [INGESTED_AT])
        changed = " OR ".join(f'items."{n}" IS DISTINCT FROM EXCLUDED."{n}"' for n in names)
        return self._write(ITEMS, table, f"ON CONFLICT (item_id) DO UPDATE SET {updates} "
                                         f"WHERE {changed}")

    def close(self) -> None:
        self.conn.close()


__all__ = ["PostgresEventLog"]
