"""Load the Beam feature tables (Parquet) into the PostgreSQL offline store of the production
profile: one table per feature table, replaced atomically (built under a temporary name, then
swapped in one transaction, so readers see the old table or the new one, never a half)."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
from psycopg import sql

from recsys.errors import FeatureStoreError
from recsys.features.tables import FEATURE_TABLES, KINDS, FeatureTable

log = logging.getLogger(__name__)
_PG_TYPES = {"int64": "BIGINT", "float32": "REAL", "string": "TEXT", "string_list": "TEXT[]",
             "int64_list": "BIGINT[]"}
assert set(_PG_TYPES) == set(KINDS)


def connection_string(host: str, port: int, database: str, user: str,
                      password: str | None = None) -> str:
    """A libpq DSN without the password: ``password`` is accepted (Feast's config carries one)
    and left out. Give it to ``psycopg.connect(dsn, password=...)`` in the process that
    connects, or to libpq in the environment (PGPASSWORD, PGPASSFILE), so that it never travels
    in a string that options, logs or manifests show."""
    return f"host={host} port={port} dbname={database} user={user}"


def has_password(dsn: str) -> bool:
    """Whether a libpq DSN (key=value or URI) carries a password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        return bool(conninfo_to_dict(dsn).get("password"))
    except psycopg.ProgrammingError:
        return False


def _columns(table: FeatureTable) -> list[tuple[str, str]]:
    return ([(table.key, "TEXT NOT NULL"), ("event_timestamp", "TIMESTAMPTZ NOT NULL"),
             ("created_timestamp", "TIMESTAMPTZ NOT NULL")]
            + [(name, _PG_TYPES[kind]) for name, kind in table.features])


def load_table(conn: psycopg.Connection, schema: str, table: FeatureTable, source: Path) -> int:
    """Replace ``schema.table`` with the rows of the Parquet files under ``source``."""
    data = pq.read_table(source, schema=table.arrow_schema())
    tmp = f"{table.name}__loading"
    cols = _columns(table)
    names = [c for c, _ in cols]
    with conn.transaction():
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}.{}").format(
            sql.Identifier(schema), sql.Identifier(tmp)))
        conn.execute(sql.SQL("CREATE TABLE {}.{} ({})").format(
            sql.Identifier(schema), sql.Identifier(tmp),
            sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t))
                               for c, t in cols)))
        copy = sql.SQL("COPY {}.{} ({}) FROM STDIN").format(
            sql.Identifier(schema), sql.Identifier(tmp),
            sql.SQL(", ").join(map(sql.Identifier, names)))
        with conn.cursor() as cur, cur.copy(copy) as out:
            for batch in data.to_batches(50_000):
                for row in zip(*(batch.column(n).to_pylist() for n in names), strict=True):
                    out.write_row(row)
        conn.execute(sql.SQL("CREATE INDEX ON {}.{} ({}, event_timestamp)").format(
            sql.Identifier(schema), sql.Identifier(tmp), sql.Identifier(table.key)))
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}.{}").format(
            sql.Identifier(schema), sql.Identifier(table.name)))
        conn.execute(sql.SQL("ALTER TABLE {}.{} RENAME TO {}").format(
            sql.Identifier(schema), sql.Identifier(tmp), sql.Identifier(table.name)))
    return data.num_rows


def load_all(dsn: str, schema: str, features_dir: Path,
             password: str | None = None) -> dict[str, int]:
    """Load every feature table under ``features_dir``; returns rows per table. ``password``
    (None: libpq's PGPASSWORD or password file) is given to the connection, not the DSN."""
    missing = [name for name in FEATURE_TABLES if not (features_dir / name).is_dir()]
    if missing:
        raise FeatureStoreError(f"{features_dir} lacks the feature tables {missing}; run "
                                "`recsys features build` first")
    loaded = {}
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10,
                               **({"password": password} if password else {}))
    except psycopg.OperationalError as exc:
        raise FeatureStoreError(
            f"cannot connect to the PostgreSQL offline store ({dsn}): "
            f"{str(exc).strip().splitlines()[0]}; check offline_store in the production "
            "feature_store.yaml") from exc
    with conn:
        for name, table in FEATURE_TABLES.items():
            loaded[name] = load_table(conn, schema, table, features_dir / name)
            log.info("loaded %s rows into %s.%s", f"{loaded[name]:,}", schema, name)
    return loaded
