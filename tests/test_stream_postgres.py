"""The production profile's event log in PostgreSQL: idempotent appends of events, catalogue
rows replaced only when they change."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pytest
from conftest import event
from feast_support import PG, drop_schema, require_services

from recsys.data.schemas import DECISIONS, EVENTS, EXPOSURES, ITEMS
from recsys.features.postgres_loader import connection_string
from recsys.stream.records import check_records
from stream_worker.postgres_events import PostgresEventLog

pytestmark = pytest.mark.services


@pytest.fixture
def log():
    require_services()
    schema = f"t{uuid.uuid4().hex[:10]}"
    event_log = PostgresEventLog(connection_string(**PG), schema)
    yield event_log
    event_log.close()
    drop_schema(schema)


def _table(records, spec) -> pa.Table:
    checked = check_records(records, spec)
    assert not checked.rejected, checked.rejected
    return checked.table


def _rows(log, table, order):
    with log.conn.cursor() as cur:
        cur.execute(f'SELECT * FROM "{log.schema}"."{table}" ORDER BY {order}')
        names = [d.name for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


def test_events_are_appended_once(log):
    first = _table([event(event_id="a"), event(event_id="b", event_type="like")], EVENTS)
    assert log.write_events(first) == 2
    again = _table([event(event_id="b", event_type="like"), event(event_id="c")], EVENTS)
    assert log.write_events(again) == 1
    rows = _rows(log, "events", "event_id")
    assert [r["event_id"] for r in rows] == ["a", "b", "c"]
    assert rows[1]["event_type"] == "like" and rows[0]["dwell_time_s"] == pytest.approx(12.5)
    assert rows[0]["timestamp"].isoformat() == "2026-10-01T12:00:00+00:00"
    assert all(r["ingested_at"] is not None for r in rows)


def test_an_events_table_of_an_earlier_version_gets_the_new_columns():
    require_services()
    schema = f"t{uuid.uuid4().hex[:10]}"
    import psycopg

    try:
        with psycopg.connect(connection_string(**PG), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
            conn.execute(f'CREATE TABLE "{schema}".events (event_id TEXT NOT NULL, user_id TEXT '
                         'NOT NULL, item_id TEXT NOT NULL, event_type TEXT NOT NULL, '
                         '"timestamp" TIMESTAMPTZ NOT NULL, session_id TEXT, watch_time_s REAL, '
                         'dwell_time_s REAL, rating REAL, position INTEGER, device TEXT, '
                         'country TEXT, language TEXT, ingested_at TIMESTAMPTZ NOT NULL, '
                         'PRIMARY KEY (event_id))')
            conn.execute(f'INSERT INTO "{schema}".events VALUES (\'old\', \'u\', \'i\', '
                         '\'click\', now(), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '
                         'now())')
        upgraded = PostgresEventLog(connection_string(**PG), schema)
        try:
            new = _table([event(event_id="new", request_id="r1", position=2)], EVENTS)
            assert upgraded.write_events(new) == 1
            rows = _rows(upgraded, "events", "event_id")
            assert [(r["event_id"], r["request_id"], r["position"]) for r in rows] == [
                ("new", "r1", 2), ("old", None, None)]
        finally:
            upgraded.close()
    finally:
        drop_schema(schema)


def test_exposures_are_appended_once(log):
    from test_lake_exposures import exposure

    first = _table([exposure("r1", 0), exposure("r1", 1)], EXPOSURES)
    assert log.write_exposures(first) == 2
    again = _table([exposure("r1", 1), exposure("r2", 0, experiments=[])], EXPOSURES)
    assert log.write_exposures(again) == 1
    rows = _rows(log, "exposures", "exposure_id")
    assert [r["exposure_id"] for r in rows] == ["r1/0", "r1/1", "r2/0"]
    assert rows[0]["experiments"] == ["ranker-v2=treatment"] and rows[2]["experiments"] == []
    assert rows[1]["position"] == 1 and rows[0]["propensity"] == pytest.approx(1.0)


def test_decisions_are_appended_once_with_their_lists_and_nulls_inside_them(log):
    from test_validation import _decision

    first = _table([_decision(), _decision(request_id="r2", bandit_updates=None)], DECISIONS)
    assert log.write_decisions(first) == 2
    assert log.write_decisions(_table([_decision(request_id="r2")], DECISIONS)) == 0
    rows = _rows(log, "decisions", "request_id")
    assert [r["request_id"] for r in rows] == ["r1", "r2"]
    assert rows[0]["list_ages_s"] == [10.0, None, 5.0, 1.0] and rows[0]["ranks"] == [0, 3, 1]
    assert rows[0]["experiments"] == [] and rows[0]["seed"] == 7


def test_event_values_land_as_given_quotes_commas_newlines_empty_and_null(log):
    odd = 'a "quoted", comma\nand newline'
    log.write_events(_table([event(event_id="x", user_id=odd, country=None, rating=4.5)],
                            EVENTS))
    row = _rows(log, "events", "event_id")[0]
    assert row["user_id"] == odd and row["country"] is None and row["rating"] == 4.5


def test_an_event_repeated_within_one_append_is_kept_once(log):
    assert log.write_events(pa.concat_tables([_table([event(event_id="a")], EVENTS)] * 2)) == 1
    assert [r["event_id"] for r in _rows(log, "events", "event_id")] == ["a"]


def test_catalogue_rows_replace_only_changed_items(log):
    log.write_items(_table([{"item_id": "i1", "category": "news", "tags": ["a"]},
                            {"item_id": "i2", "category": "film"}], ITEMS))
    before = {r["item_id"]: r["ingested_at"] for r in _rows(log, "items", "item_id")}
    log.write_items(_table([{"item_id": "i1", "category": "sports", "tags": ["a", "b"]},
                            {"item_id": "i2", "category": "film"}], ITEMS))
    rows = {r["item_id"]: r for r in _rows(log, "items", "item_id")}
    assert rows["i1"]["category"] == "sports" and rows["i1"]["tags"] == ["a", "b"]
    assert rows["i1"]["ingested_at"] > before["i1"]
    assert rows["i2"]["ingested_at"] == before["i2"]  # unchanged: not rewritten


def test_a_broken_connection_is_opened_again(log):
    import psycopg

    log.write_events(_table([event(event_id="a")], EVENTS))
    pid = log.conn.info.backend_pid
    with psycopg.connect(connection_string(**PG), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(psycopg.OperationalError):
        log.write_events(_table([event(event_id="b")], EVENTS))
    assert log.write_events(_table([event(event_id="b")], EVENTS)) == 1
    assert log.conn.info.backend_pid != pid
    assert [r["event_id"] for r in _rows(log, "events", "event_id")] == ["a", "b"]


def test_the_worker_takes_the_password_from_the_profile_not_into_its_dsn(tmp_path, monkeypatch):
    """A production repository whose offline store reads its password from the environment
    (``${VAR}``): the stream worker's event log connects with it, and its DSN (what messages
    and reprs show) holds no password."""
    from feast_support import password_from_environment, production_repo

    from recsys.stream.config import StreamConfig
    from stream_worker.runner import WorkerSpec, event_log

    profile, schema = production_repo(tmp_path, {})
    password_from_environment(profile, monkeypatch, "pw-of-the-worker")
    try:
        sink = event_log(WorkerSpec(StreamConfig(), repo=profile, lake=None, consumer="c1"))
        assert isinstance(sink, PostgresEventLog)
        assert "pw-of-the-worker" not in sink.dsn + repr(vars(sink).get("dsn"))
        assert sink.conn.execute("SELECT 1").fetchone() == (1,)
        sink.close()
    finally:
        drop_schema(schema)
