"""Test support for Feast: temporary copies of the feature repository in either profile, with
feature tables written by the test, and the check that the services are up."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys.features.postgres_loader import connection_string, load_table
from recsys.features.tables import FEATURE_TABLES

REPO = Path(__file__).resolve().parents[1] / "feature_repo"
PG = {"host": "127.0.0.1", "port": 5432, "database": "postgres", "user": "postgres",
      "password": ""}
REDIS = ("127.0.0.1", 6379)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require_services() -> None:
    """Skip (or, under CI=true, fail) when PostgreSQL or Redis is not on 127.0.0.1."""
    down = [name for name, (host, port) in {"PostgreSQL": (PG["host"], PG["port"]),
                                            "Redis": REDIS}.items()
            if not _reachable(host, port)]
    if down:
        message = (f"{' and '.join(down)} not reachable on 127.0.0.1: the production-profile "
                   "tests need them (start them, or run without the 'services' tests)")
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; under CI they must run")
        pytest.skip(message)


def embedded_repo(tmp_path: Path, tables: dict[str, pa.Table]) -> Path:
    """A copy of the embedded repository whose data/ holds ``tables`` (empty where absent)."""
    repo = tmp_path / "feature_repo"
    shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    for name, table in FEATURE_TABLES.items():
        target = repo / "data" / name
        target.mkdir(parents=True)
        data = tables.get(name, table.arrow_schema().empty_table())
        pq.write_table(data, target / "part-0.parquet")
    return repo


def production_repo(tmp_path: Path, tables: dict[str, pa.Table]) -> tuple[Path, str]:
    """A copy of the production repository with its own project and PostgreSQL schema, holding
    ``tables``; returns (profile directory, schema)."""
    require_services()
    name = f"t{uuid.uuid4().hex[:10]}"
    repo = tmp_path / "feature_repo"
    shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    yaml_path = repo / "production" / "feature_store.yaml"
    text = yaml_path.read_text().replace("project: recsys", f"project: {name}")
    yaml_path.write_text(text.replace("db_schema: recsys", f"db_schema: {name}"))
    import psycopg

    with psycopg.connect(connection_string(**PG), autocommit=True) as conn:
        for table_name, table in FEATURE_TABLES.items():
            source = tmp_path / "pg-load" / table_name
            source.mkdir(parents=True)
            pq.write_table(tables.get(table_name, table.arrow_schema().empty_table()),
                           source / "part-0.parquet")
            load_table(conn, name, table, source)
    return repo / "production", name


def drop_schema(schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(connection_string(**PG), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def password_from_environment(profile: Path, monkeypatch, password: str,
                              variable: str = "RECSYS_TEST_PG_PASSWORD") -> None:
    """The production profile at ``profile`` reads its PostgreSQL password from ``$variable``
    (``${VAR}`` in feature_store.yaml, which Feast substitutes), set to ``password``. The
    server trusts local connections, so any password connects."""
    config = profile / "feature_store.yaml"
    config.write_text(config.read_text().replace('password: ""', f"password: ${{{variable}}}"))
    monkeypatch.setenv(variable, password)
