"""The feature build over the lake and the production profile's PostgreSQL event log: the same
outputs as a lake holding the union, each event once, the latest catalogue row winning."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from feast_support import (
    PG,
    drop_schema,
    password_from_environment,
    production_repo,
    require_services,
)

from beam_jobs.lake_io import table_rows
from beam_jobs.pipeline import OUTPUT_SCHEMAS, run
from beam_jobs.postgres_io import EventLogSource, ReadEventLogTable, has_rows
from recsys.data.lake import Lake
from recsys.data.schemas import EVENTS, ITEMS, USERS
from recsys.data.synthetic import SyntheticConfig, generate
from recsys.errors import ConfigError, SourceError
from recsys.features.postgres_loader import connection_string
from stream_worker.postgres_events import PostgresEventLog

DSN = connection_string(**PG)
UTC = dt.timezone.utc
services = pytest.mark.services


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> dict[str, pa.Table]:
    """A small synthetic platform's events (sorted by id), items and users."""
    lake = Lake(tmp_path_factory.mktemp("platform") / "lake", create=True)
    generate(SyntheticConfig(users=20, items=40, days=2, seed=11, end_date=dt.date(2026, 1, 5)),
             lake, progress=False)
    return {spec.name: lake.read(spec.name).select(list(spec.input_columns)).sort_by(spec.key)
            for spec in (EVENTS, ITEMS, USERS)}


@pytest.fixture
def schema():
    """A fresh PostgreSQL schema name, dropped afterwards."""
    require_services()
    name = f"t{uuid.uuid4().hex[:10]}"
    yield name
    drop_schema(name)


def _lake(path: Path, data: dict[str, pa.Table], events: pa.Table,
          later_items: pa.Table | None = None) -> Lake:
    lake = Lake(path, create=True)
    lake.write_users(data["users"], "test")
    lake.write_items(data["items"], "test")
    lake.write_events(events, "test")
    if later_items is not None:
        lake.write_items(later_items, "test later")
    return lake


def _write_log(schema: str, events: pa.Table, items: pa.Table | None = None) -> None:
    log = PostgresEventLog(DSN, schema)
    try:
        log.write_events(events)
        if items is not None:
            log.write_items(items)
    finally:
        log.close()


def _run(lake: Lake, out: Path, *options: str):
    return run(["--lake", str(lake.root), "--output", str(out), *options])


def _outputs(out: Path) -> dict[str, list[dict]]:
    """Every output table as rows in a fixed order."""
    return {name: sorted(pq.read_table(out / name).to_pylist(),
                         key=lambda r: json.dumps(r, sort_keys=True, default=str))
            for name in OUTPUT_SCHEMAS}


def _changed_items(items: pa.Table) -> pa.Table:
    """The first item with another category and tags, and an item only the stream knows."""
    first, other = items.slice(0, 1).to_pylist()[0], items.slice(1, 1).to_pylist()[0]
    category = next(c for c in items.column("category").to_pylist() if c != first["category"])
    fresh = {**other, "item_id": "i-stream", "title": "Fresh from the stream",
             "tags": ["breaking"]}
    return pa.Table.from_pylist([{**first, "category": category, "tags": ["updated"]}, fresh],
                                schema=ITEMS.schema.remove(ITEMS.schema.get_field_index(
                                    "ingested_at")))


# -- the source ----------------------------------------------------------------------------

@services
def test_event_log_rows_are_the_lake_rows_of_the_same_records(tmp_path, schema):
    events = [
        {"event_id": "a", "user_id": "u1", "item_id": "i1", "event_type": "watch",
         "timestamp": dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
         "watch_time_s": 0.1, "position": 7, "device": "tv", "country": "BR",
         "language": "pt-BR"},
        {"event_id": "b", "user_id": "u2", "item_id": "i2", "event_type": "rating",
         "timestamp": dt.datetime(2026, 1, 3, tzinfo=UTC), "rating": 4.5},
    ]
    items = [{"item_id": "i1", "title": "One", "category": "news", "language": "en",
              "tags": ["x", "y"], "created_at": dt.datetime(2025, 12, 1, tzinfo=UTC),
              "duration_s": 33.3},
             {"item_id": "i2", "tags": []}]
    lake = Lake(tmp_path / "lake", create=True)
    lake.write_events(events, "t")
    lake.write_items(items, "t")
    _write_log(schema, lake.read("events").select(list(EVENTS.input_columns)),
               lake.read("items").select(list(ITEMS.input_columns)))

    def from_lake(spec):
        files = sorted((lake.root / spec.name).rglob("part-*.parquet"))
        return [{k: v for k, v in r.items() if k != "ingested_at"}
                for f in files for r in table_rows(pq.read_table(f))]

    source = EventLogSource(DSN, schema)
    with BeamTestPipeline() as p:
        for spec in (EVENTS, ITEMS):
            rows = p | f"Read{spec.name}" >> ReadEventLogTable(source, spec, splits=3)
            assert_that(rows | f"Stamped{spec.name}" >> beam.Map(
                lambda r: isinstance(r["ingested_at"], int)), equal_to([True, True]),
                label=f"{spec.name} ingested_at")
            assert_that(rows | f"Drop{spec.name}" >> beam.Map(
                lambda r: {k: v for k, v in r.items() if k != "ingested_at"}),
                equal_to(from_lake(spec)), label=f"{spec.name} rows")


# -- whole runs ----------------------------------------------------------------------------

@services
def test_the_build_over_lake_and_event_log_equals_a_build_over_their_union(
        tmp_path, platform, schema):
    events = platform["events"]
    n = events.num_rows
    in_lake, in_log = events.slice(0, n * 6 // 10), events.slice(n * 4 // 10)  # 20% in both
    changed = _changed_items(platform["items"])
    lake = _lake(tmp_path / "lake", platform, in_lake)
    _write_log(schema, in_log, changed)  # after the lake: its catalogue rows are newer
    union = _lake(tmp_path / "union", platform, events, later_items=changed)

    merged = _run(lake, tmp_path / "merged", "--event_log_dsn", DSN, "--event_log_schema",
                  schema)
    expected = _run(union, tmp_path / "expected")

    assert merged.counters["event_log_events_read"] == in_log.num_rows
    assert merged.counters["event_log_items_read"] == 2
    assert merged.counters["events_read"] == expected.counters["events_read"] == n
    assert merged.counters["items_read"] == expected.counters["items_read"] == 41
    assert _outputs(tmp_path / "merged") == _outputs(tmp_path / "expected")
    catalogue = {r["item_id"]: r for r in pq.read_table(tmp_path / "merged" / "item_catalogue")
                 .to_pylist()}
    first = changed.to_pylist()[0]
    assert catalogue[first["item_id"]]["item_category"] == first["category"]
    assert catalogue[first["item_id"]]["item_tags"] == ["updated"]
    assert catalogue["i-stream"]["item_tags"] == ["breaking"]
    assert len(pq.read_table(tmp_path / "merged" / "session_sequences")) == n
    run_info = json.loads((tmp_path / "merged" / "_run.json").read_text())
    assert run_info["event_log"] == (f"EventLogSource(host=127.0.0.1 port=5432 dbname=postgres "
                                     f"user=postgres schema={schema})")


@services
def test_a_missing_event_log_gives_the_lake_only_result(tmp_path, platform, schema, caplog):
    half = platform["events"].num_rows // 2
    lake = _lake(tmp_path / "lake", platform, platform["events"].slice(0, half))
    without = _run(lake, tmp_path / "without")
    with caplog.at_level(logging.WARNING, logger="beam_jobs.postgres_io"):
        missing = _run(lake, tmp_path / "missing", "--event_log_dsn", DSN,
                       "--event_log_schema", schema)
    assert missing.counters["events_read"] == without.counters["events_read"] == half
    assert "event_log_events_read" not in missing.counters
    assert _outputs(tmp_path / "missing") == _outputs(tmp_path / "without")
    where = "host=127.0.0.1 port=5432 dbname=postgres user=postgres"
    assert [r.getMessage() for r in caplog.records] == [
        f"event log: no table {schema}.{table} at {where} (has the stream worker written yet?); "
        "reading no rows from it" for table in ("events", "items")]


@services
def test_an_empty_event_log_gives_the_lake_only_result(tmp_path, platform, schema):
    half = platform["events"].num_rows // 2
    lake = _lake(tmp_path / "lake", platform, platform["events"].slice(0, half))
    _write_log(schema, platform["events"].slice(0, 0))  # the tables exist, no rows
    assert not has_rows(EventLogSource(DSN, schema), EVENTS)
    without = _run(lake, tmp_path / "without")
    empty = _run(lake, tmp_path / "empty", "--event_log_dsn", DSN, "--event_log_schema", schema)
    assert empty.counters["events_read"] == without.counters["events_read"] == half
    assert _outputs(tmp_path / "empty") == _outputs(tmp_path / "without")
    _write_log(schema, platform["events"].slice(half, 1))
    assert has_rows(EventLogSource(DSN, schema), EVENTS)


@services
def test_an_unreachable_event_log_fails_naming_host_and_database_not_the_password(
        tmp_path, monkeypatch):
    require_services()
    lake = Lake(tmp_path / "lake", create=True)
    monkeypatch.setenv("EVENT_LOG_DSN",
                       "host=127.0.0.1 port=1 dbname=nowhere user=postgres password=s3cret")
    with pytest.raises(SourceError) as caught:
        _run(lake, tmp_path / "out", "--event_log_dsn_env", "EVENT_LOG_DSN",
             "--event_log_schema", "recsys")
    message = str(caught.value)
    assert message.startswith("cannot connect to the PostgreSQL event log (host=127.0.0.1 "
                              "port=1 dbname=nowhere user=postgres): ")
    assert message.endswith("; check $EVENT_LOG_DSN") and "s3cret" not in message
    assert not (tmp_path / "out").exists()


@services
def test_a_password_reaches_the_workers_from_the_environment_not_the_options(
        tmp_path, platform, schema, monkeypatch, caplog):
    """The DSN with its password in an environment variable: the job reads the log, and the
    password is in neither its options, its outputs nor its log (the server trusts local
    connections, so any password connects)."""
    events = platform["events"]
    lake = _lake(tmp_path / "lake", platform, events.slice(0, 10))
    _write_log(schema, events.slice(10, 10))  # (offset, length)
    monkeypatch.setenv("EVENT_LOG_DSN", f"{DSN} password=pw-in-the-environment")
    with caplog.at_level(logging.DEBUG):
        built = _run(lake, tmp_path / "out", "--event_log_dsn_env", "EVENT_LOG_DSN",
                     "--event_log_schema", schema)
    assert built.counters["event_log_events_read"] == 10
    written = "".join(p.read_text(errors="replace") for p in (tmp_path / "out").rglob("*")
                      if p.is_file() and p.suffix in ("", ".json", ".txt"))
    assert "pw-in-the-environment" not in written + caplog.text


@services
def test_the_production_feature_build_reads_the_stream_event_log(tmp_path, platform,
                                                                 monkeypatch, caplog):
    """With the offline store's password taken from the environment (``${VAR}`` in Feast's
    config), the build reads the event log and loads PostgreSQL, and the password is in no
    option, output or log line (the server trusts local connections: any password works)."""
    import os

    from workflows.features_build import EVENT_LOG_DSN_ENV, build_features

    profile, schema = production_repo(tmp_path, {})
    password_from_environment(profile, monkeypatch, "pw-of-the-offline-store")
    try:
        events = platform["events"]
        n = events.num_rows
        lake = _lake(tmp_path / "lake", platform, events.slice(0, n // 2))
        _write_log(schema, events.slice(n // 3))
        with caplog.at_level(logging.DEBUG):
            built = build_features(lake.root, profile.parent, "production")
        assert built.beam.counters["event_log_events_read"] == n - n // 3
        assert built.beam.counters["events_read"] == n
        assert built.loaded["item_catalogue"] == 40
        assert EVENT_LOG_DSN_ENV not in os.environ  # set for the job only
        run_info = (profile / "data" / "_run.json").read_text()
        assert "pw-of-the-offline-store" not in run_info + caplog.text
    finally:
        drop_schema(schema)


# -- bad options (no services needed) ------------------------------------------------------

@pytest.mark.parametrize("options, message", [
    (["--event_log_dsn", DSN], "--event_log_dsn needs --event_log_schema: give both to read "
                               "the PostgreSQL event log, or neither"),
    (["--event_log_schema", "recsys"], "--event_log_schema needs --event_log_dsn: give both "
                                       "to read the PostgreSQL event log, or neither"),
    (["--event_log_dsn", DSN, "--event_log_schema", ""],
     "--event_log_schema is empty; give the PostgreSQL schema the stream worker writes its "
     "events and items to"),
    (["--event_log_dsn", " ", "--event_log_schema", "recsys"],
     "--event_log_dsn is empty; give the libpq connection string of the PostgreSQL database "
     "holding the event log"),
    (["--event_log_dsn", "host=h s3cret", "--event_log_schema", "recsys"],
     "--event_log_dsn is not a PostgreSQL connection string; give 'host=H port=P dbname=D "
     "user=U' or 'postgresql://U@H:P/D'"),
    (["--event_log_dsn", "host=h user=u password=s3cret", "--event_log_schema", "recsys"],
     "--event_log_dsn holds a password, which would travel with the pipeline's options "
     "(runners show, log and ship them); leave it out and give it to libpq where the pipeline "
     "runs (PGPASSWORD, or a password file: PGPASSFILE, ~/.pgpass), or put the whole DSN in "
     "an environment variable and name it with --event_log_dsn_env"),
    (["--event_log_dsn", "postgresql://u:s3cret@h/db", "--event_log_schema", "recsys"],
     "--event_log_dsn holds a password, which would travel with the pipeline's options "
     "(runners show, log and ship them); leave it out and give it to libpq where the pipeline "
     "runs (PGPASSWORD, or a password file: PGPASSFILE, ~/.pgpass), or put the whole DSN in "
     "an environment variable and name it with --event_log_dsn_env"),
    (["--event_log_dsn_env", "RECSYS_TEST_UNSET_DSN", "--event_log_schema", "recsys"],
     "--event_log_dsn_env names $RECSYS_TEST_UNSET_DSN, which is not set here; set it to the "
     "event log's libpq connection string"),
    (["--event_log_dsn_env", "RECSYS_TEST_UNSET_DSN"],
     "--event_log_dsn_env needs --event_log_schema: give both to read the PostgreSQL event "
     "log, or neither"),
])
def test_bad_event_log_options_are_config_errors(tmp_path, options, message):
    lake = Lake(tmp_path / "lake", create=True)
    with pytest.raises(ConfigError) as caught:
        _run(lake, tmp_path / "out", *options)
    assert str(caught.value) == message
