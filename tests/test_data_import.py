"""`recsys data import`: every format and the SQL source, the mapping, idempotence, the bad
input at each boundary (files, mapping files, flags) and the dry run. Data is generated here."""

from __future__ import annotations

import gzip
import json
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys.data.dead_letter import read_dead_letter
from recsys.data.importing.importer import Sources, import_data
from recsys.data.importing.mapping import ImportMapping
from recsys.data.lake import Lake
from recsys.errors import BadRecordRatioError, ConfigError, SchemaError, SourceError
from workflows.cli.main import main

T0_MS = 1_780_000_000_000  # 2026-05-28T20:26:40Z

MAPPING = {
    "events": {
        "columns": {"user_id": "visitorid", "item_id": "itemid", "event_type": "event",
                    "timestamp": "ts_ms"},
        "timestamp_unit": "ms",
        "event_types": {"view": "click", "addtocart": "like", "transaction": "watch"},
        "event_id_from": ["visitorid", "itemid", "ts_ms", "event"],
        "constants": {"device": "desktop"},
    },
    "items": {"columns": {"item_id": "itemid", "category": "categoryid", "tags": "labels"}},
}


def clicks(n: int = 12, start: int = 0) -> pd.DataFrame:
    kinds = ["view", "addtocart", "transaction"]
    return pd.DataFrame({
        "ts_ms": [str(T0_MS + 1000 * (start + i)) for i in range(n)],
        "visitorid": [f"v{(start + i) % 4}" for i in range(n)],
        "event": [kinds[(start + i) % 3] for i in range(n)],
        "itemid": [f"i{(start + i) % 5}" for i in range(n)],
    })


def catalogue() -> pd.DataFrame:
    return pd.DataFrame({"itemid": [f"i{i}" for i in range(5)],
                         "categoryid": [f"c{i % 2}" for i in range(5)],
                         "labels": ["a|b", "b", "", "c | d", "a"]})


def mapping() -> ImportMapping:
    return ImportMapping.from_dict(MAPPING)


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def run(lake_dir: Path, mapping_: ImportMapping | None = None, max_bad_fraction: float = 0.05,
        batch_rows: int = 100_000, **sources):
    return import_data(Lake(lake_dir, create=True), Sources(**sources), mapping_ or mapping(),
                       progress=False, max_bad_fraction=max_bad_fraction, batch_rows=batch_rows)


def events(lake_dir: Path) -> pd.DataFrame:
    return Lake(lake_dir).read("events").to_pandas().sort_values("timestamp").reset_index(
        drop=True)


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "parquet", "jsonl", "jsonl.gz"])
def test_every_format_gives_the_same_lake(tmp_path, fmt):
    frame = clicks()
    path = tmp_path / f"clicks.{fmt}"
    if fmt.startswith("csv"):
        frame.to_csv(path, index=False)
    elif fmt == "parquet":
        pq.write_table(pa.Table.from_pandas(frame.assign(ts_ms=frame["ts_ms"].astype("int64")),
                                            preserve_index=False), path)
    else:
        lines = "".join(json.dumps({**r, "ts_ms": int(r["ts_ms"])}) + "\n"
                        for r in frame.to_dict("records"))
        if fmt.endswith(".gz"):
            path.write_bytes(gzip.compress(lines.encode()))
        else:
            path.write_text(lines)
    report = run(tmp_path / "lake", events=(str(path),))
    got = events(tmp_path / "lake")
    assert report.tables["events"].written == 12
    assert got["event_type"].tolist()[:3] == ["click", "like", "watch"]
    assert got["timestamp"].iloc[0] == pd.Timestamp(T0_MS, unit="ms", tz="UTC")
    assert (got["device"] == "desktop").all()
    reference = tmp_path / "reference"
    run(reference, events=(str(write_csv(tmp_path / "ref.csv", frame)),))
    assert got["event_id"].tolist() == events(reference)["event_id"].tolist()


def test_text_that_other_tools_read_as_missing_is_kept(tmp_path):
    frame = clicks(4).assign(visitorid=["NA", "null", "NaN", "N/A"])
    run(tmp_path / "lake", events=(str(write_csv(tmp_path / "c.csv", frame)),))
    assert sorted(events(tmp_path / "lake")["user_id"]) == ["N/A", "NA", "NaN", "null"]


def test_globs_and_the_catalogue_lists(tmp_path):
    write_csv(tmp_path / "day1.csv", clicks(6))
    write_csv(tmp_path / "day2.csv", clicks(6, start=6))
    write_csv(tmp_path / "items.csv", catalogue())
    report = run(tmp_path / "lake", events=(str(tmp_path / "day*.csv"),),
                 items=(str(tmp_path / "items.csv"),))
    assert report.tables["events"].written == 12
    assert len(report.tables["events"].sources) == 2
    items = Lake(tmp_path / "lake").read("items").to_pandas().set_index("item_id")
    assert items.loc["i0", "tags"].tolist() == ["a", "b"]
    assert items.loc["i3", "tags"].tolist() == ["c", "d"]
    assert items.loc["i2", "tags"] is None
    users = Lake(tmp_path / "lake").read("users").to_pandas()
    assert sorted(users["user_id"]) == ["v0", "v1", "v2", "v3"]  # rows with only the id


def test_reimport_adds_nothing_and_bare_rows_never_replace_real_ones(tmp_path):
    write_csv(tmp_path / "items.csv", catalogue())
    path = write_csv(tmp_path / "clicks.csv", clicks())
    run(tmp_path / "lake", events=(str(path),), items=(str(tmp_path / "items.csv"),))
    again = run(tmp_path / "lake", events=(str(path),), items=(str(tmp_path / "items.csv"),))
    assert again.tables["events"].written == 0
    assert again.tables["events"].already_in_lake == 12
    assert again.tables["items"].written == 0
    assert all(report.written == 0 for report in again.derived)
    items = Lake(tmp_path / "lake").read("items").to_pandas()
    assert items["category"].notna().all()  # not replaced by rows with only an id


@pytest.mark.parametrize("unit,scale", [("s", 1), ("ms", 1_000), ("us", 1_000_000),
                                        ("ns", 1_000_000_000)])
def test_timestamp_units(tmp_path, unit, scale):
    frame = clicks(3).assign(ts_ms=[str(1_780_000_000 * scale + i * scale) for i in range(3)])
    m = mapping().with_changes("events", timestamp_unit=unit)
    run(tmp_path / "lake", m, events=(str(write_csv(tmp_path / "c.csv", frame)),))
    assert events(tmp_path / "lake")["timestamp"].tolist() == [
        pd.Timestamp(1_780_000_000 + i, unit="s", tz="UTC") for i in range(3)]


def test_iso_times_with_offsets_naive_times_in_a_zone_and_a_format(tmp_path):
    frame = clicks(3).assign(ts_ms=["2026-06-01T12:00:00+02:00", "2026-06-01 12:00:00",
                                    "2026-06-01T12:00:00Z"])
    m = mapping().with_changes("events", timestamp_unit="iso", timezone="Europe/Berlin")
    run(tmp_path / "lake", m, events=(str(write_csv(tmp_path / "c.csv", frame)),))
    got = Lake(tmp_path / "lake").read("events").to_pandas().set_index("user_id")["timestamp"]
    assert got["v0"] == pd.Timestamp("2026-06-01T10:00:00Z")
    assert got["v1"] == pd.Timestamp("2026-06-01T10:00:00Z")  # Berlin summer time
    assert got["v2"] == pd.Timestamp("2026-06-01T12:00:00Z")
    changes = clicks(2).assign(ts_ms=["2025-10-26 02:30:00", "2026-03-29 02:30:00"])
    m = mapping().with_changes("events", timestamp_unit="iso", timezone="Europe/Berlin")
    run(tmp_path / "lake3", m, events=(str(write_csv(tmp_path / "dst.csv", changes)),))
    assert events(tmp_path / "lake3")["timestamp"].tolist() == [  # first of two; past the gap
        pd.Timestamp("2025-10-26T00:30:00Z"), pd.Timestamp("2026-03-29T01:00:00Z")]
    formatted = clicks(1).assign(ts_ms=["01/06/2026 12:00"])
    m = mapping().with_changes("events", timestamp_unit="auto",
                               timestamp_format="%d/%m/%Y %H:%M", timezone="America/New_York")
    run(tmp_path / "lake2", m, events=(str(write_csv(tmp_path / "f.csv", formatted)),))
    assert events(tmp_path / "lake2")["timestamp"].iloc[0] == pd.Timestamp(
        "2026-06-01T16:00:00Z")


def test_identity_columns_are_taken_and_constants_fill_fields(tmp_path):
    frame = pd.DataFrame({"event_id": ["e1", "e2"], "user_id": ["u1", "u2"],
                          "item_id": ["i1", "i2"], "event_type": ["click", "rating"],
                          "timestamp": ["2026-06-01T00:00:00Z", "2026-06-01T00:00:01Z"],
                          "rating": ["4.5", "3"], "ignored_column": ["x", "y"]})
    m = ImportMapping.from_dict({"events": {"constants": {"country": "DE"}}})
    run(tmp_path / "lake", m, events=(str(write_csv(tmp_path / "e.csv", frame)),))
    got = events(tmp_path / "lake")
    assert got["event_id"].tolist() == ["e1", "e2"]
    assert got["rating"].tolist() == [4.5, 3.0]
    assert "ignored_column" not in got.columns
    assert (got["country"] == "DE").all()


def test_the_sql_source(tmp_path):
    from feast_support import PG, require_services

    require_services()
    import psycopg

    table = f"import_test_{uuid.uuid4().hex[:8]}"
    dsn = f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{PG['database']}"
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f"CREATE TABLE {table} (visitorid text, itemid text, event text, "
                           "ts_ms bigint, amount numeric)")
        with connection.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s, %s, 1.5)",
                               [(r.visitorid, r.itemid, r.event, int(r.ts_ms))
                                for r in clicks().itertuples()])
        try:
            sources = Sources(events_sql=(dsn, f"SELECT * FROM {table} ORDER BY ts_ms"))
            report = import_data(Lake(tmp_path / "lake", create=True), sources, mapping(),
                                 batch_rows=5, progress=False)
        finally:
            connection.execute(f"DROP TABLE {table}")
    assert report.tables["events"].written == 12
    reference = tmp_path / "reference"
    run(reference, events=(str(write_csv(tmp_path / "ref.csv", clicks())),))
    assert events(tmp_path / "lake")["event_id"].tolist() == events(reference)[
        "event_id"].tolist()
    with pytest.raises(SourceError, match="the query failed"):
        import_data(Lake(tmp_path / "lake"), Sources(events_sql=(dsn, "SELECT * FROM nowhere")),
                    mapping(), progress=False)


# -- bad input -------------------------------------------------------------------------------

def test_a_missing_mapped_column_is_refused_naming_it_and_nothing_is_written(tmp_path):
    write_csv(tmp_path / "items.csv", catalogue())
    path = write_csv(tmp_path / "c.csv", clicks().drop(columns=["visitorid"]))
    with pytest.raises(SchemaError, match="column 'visitorid' \\(mapped to user_id\\) is not in"):
        run(tmp_path / "lake", events=(str(path),), items=(str(tmp_path / "items.csv"),))
    assert Lake(tmp_path / "lake").read("items").num_rows == 0  # checked before any write


def test_a_required_field_nothing_fills_is_refused(tmp_path):
    path = write_csv(tmp_path / "c.csv", clicks())
    with pytest.raises(SchemaError, match="required field 'user_id'"):
        run(tmp_path / "lake", ImportMapping.from_dict({"events": {"columns": {
            "item_id": "itemid", "event_type": "event", "timestamp": "ts_ms"},
            "event_id_from": ["ts_ms"]}}), events=(str(path),))


def test_unmapped_event_types_and_unreadable_times_are_rejected_per_row_with_location(tmp_path):
    frame = clicks(100)
    frame.loc[7, "event"] = "wishlist"
    frame.loc[42, "ts_ms"] = "yesterday"
    frame.loc[50, "ts_ms"] = "99999999999999999999"
    report = run(tmp_path / "lake", events=(str(write_csv(tmp_path / "c.csv", frame)),))
    done = report.tables["events"]
    assert (done.written, done.rejected) == (97, 3)
    lines = [entry for path in done.dead_letters for entry in read_dead_letter(path)]
    by_location = {entry["location"]: entry["reason"] for entry in lines}
    assert "event_type 'wishlist' is not mapped" in by_location[f"{tmp_path / 'c.csv'}:9"]
    assert "'yesterday' is not a number of ms" in by_location[f"{tmp_path / 'c.csv'}:44"]
    assert "outside years 1-9999" in by_location[f"{tmp_path / 'c.csv'}:52"]


def test_iso_times_that_do_not_parse_are_rejected_with_a_hint_for_numbers(tmp_path):
    frame = clicks(40)
    frame["ts_ms"] = "2026-06-01T00:00:00Z"
    frame.loc[3, "ts_ms"] = "1780000000000"
    frame.loc[4, "ts_ms"] = "1st of June"
    m = mapping().with_changes("events", timestamp_unit="auto")
    done = run(tmp_path / "lake", m, events=(str(write_csv(tmp_path / "c.csv", frame)),)
               ).tables["events"]
    reasons = [e["reason"] for p in done.dead_letters for e in read_dead_letter(p)]
    assert any("say its unit with --timestamp-unit" in r for r in reasons)
    assert any("cannot read '1st of June' as an ISO 8601 time" in r for r in reasons)


def test_malformed_csv_rows_are_rejected_with_their_lines(tmp_path):
    path = tmp_path / "c.csv"
    rows = ["ts_ms,visitorid,event,itemid"] + [f"{T0_MS + i},v{i % 3},view,i{i % 4}"
                                               for i in range(40)]
    rows[5] = "1,2"  # line 6
    rows[10] = f'{T0_MS + 99},"v\nx",view,i1'  # a value over two lines (11-12)
    path.write_text("\n".join(rows) + "\n")
    done = run(tmp_path / "lake", events=(str(path),)).tables["events"]
    assert (done.written, done.rejected) == (39, 1)
    entry = read_dead_letter(done.dead_letters[0])[0]
    assert entry["location"] == f"{path}:6" and "expected 4 fields, found 2" in entry["reason"]


def test_the_bad_fraction_stops_at_the_batch_that_crosses_it(tmp_path):
    frame = clicks(60)
    frame.loc[40:, "event"] = "wishlist"  # the third batch of 20 is all bad
    path = write_csv(tmp_path / "c.csv", frame)
    lake = Lake(tmp_path / "lake", create=True)
    with pytest.raises(BadRecordRatioError, match="20 of 60 events records read so far"):
        import_data(lake, Sources(events=(str(path),)), mapping(), batch_rows=20,
                    max_bad_fraction=0.2, progress=False)
    assert lake.read("events").num_rows == 40  # the earlier batches, not the crossing one


def test_a_mapping_file_with_unknown_keys_is_refused_naming_the_key(tmp_path):
    bad = tmp_path / "m.yaml"
    bad.write_text("events:\n  colums: {user_id: visitorid}\n")
    with pytest.raises(ConfigError, match="unknown key\\(s\\) in config section 'events': "
                                          "colums"):
        ImportMapping.from_yaml(bad)
    bad.write_text("event: {}\n")
    with pytest.raises(ConfigError, match="unknown key\\(s\\) in the import mapping: event;"):
        ImportMapping.from_yaml(bad)


@pytest.mark.parametrize("raw,message", [
    ({"events": {"columns": {"visitor": "visitorid"}}}, "'visitor' is not a field"),
    ({"events": {"event_types": {"view": "glance"}}}, "'glance' is not an event type"),
    ({"events": {"timezone": "Mars/Olympus"}}, "timezone must be an IANA time zone"),
    ({"events": {"timestamp_unit": "minutes"}}, "timestamp_unit must be one of"),
    ({"events": {"columns": {"device": "d"}, "constants": {"device": "tv"}}},
     "'device' is both a column and a constant"),
    ({"events": {"event_types": {"x": "click"}, "drop_event_types": ["x"]}},
     "'x' is both mapped"),
    ({"items": {"constants": {"colour": "red"}}}, "'colour' is not a field of the lake's items"),
    (["events"], "must be a mapping of tables"),
])
def test_bad_mappings_are_refused_naming_the_problem(raw, message):
    with pytest.raises(ConfigError, match=message):
        ImportMapping.from_dict(raw)


def test_sources_that_do_not_exist_or_cannot_be_told_apart(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        run(tmp_path / "lake", events=(str(tmp_path / "none-*.csv"),))
    (tmp_path / "clicks.txt").write_text("a,b\n")
    with pytest.raises(SourceError, match="cannot tell its format"):
        run(tmp_path / "lake", events=(str(tmp_path / "clicks.txt"),))
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(SourceError, match="not readable Parquet"):
        run(tmp_path / "lake", events=(str(tmp_path / "bad.parquet"),))
    with pytest.raises(SchemaError, match="nothing to import"):
        run(tmp_path / "lake")


def test_json_lines_that_are_not_objects_are_rejected_with_their_line(tmp_path):
    good = [json.dumps(r) for r in clicks(60).to_dict("records")]
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(good[:3] + ["{not json", "[1, 2]"] + good[3:]) + "\n")
    done = run(tmp_path / "lake", events=(str(path),)).tables["events"]
    assert (done.written, done.rejected) == (60, 2)
    locations = sorted(e["location"] for p in done.dead_letters for e in read_dead_letter(p))
    assert locations == [f"{path}:4", f"{path}:5"]
    only_bad = tmp_path / "bad.jsonl"
    only_bad.write_text("{not json\n[1]\n")
    with pytest.raises(BadRecordRatioError, match="2 of 2 events records read so far"):
        run(tmp_path / "lake", events=(str(only_bad),))


# -- the command -----------------------------------------------------------------------------

def test_the_command_with_flags_and_a_dry_run_that_writes_nothing(tmp_path, capsys):
    frame = clicks(30)
    frame.loc[2, "event"] = "wishlist"
    path = write_csv(tmp_path / "c.csv", frame)
    flags = ["data", "import", "--events", str(path), "--out", str(tmp_path / "lake"),
             "--column", "events.user_id=visitorid", "--column", "events.item_id=itemid",
             "--column", "events.event_type=event", "--column", "events.timestamp=ts_ms",
             "--timestamp-unit", "ms", "--event-type", "view=click", "--event-type",
             "addtocart=like", "--event-type", "transaction=watch", "--event-id-from",
             "visitorid,itemid,ts_ms,event", "--no-progress"]
    assert main([*flags, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "user_id              <- column 'visitorid'" in out
    assert "first 30 records: 29 valid, 1 rejected" in out
    assert f"{path}:4: event_type 'wishlist' is not mapped" in out
    assert "dry run: nothing was written" in out
    assert not (tmp_path / "lake").exists()
    assert main(flags) == 0
    out = capsys.readouterr().out
    assert f"events from {path}: received 30, written 29, already in lake 0, duplicates in " \
           "input 0, rejected 1" in out
    assert main([*flags, "--drop-event-type", "wishlist"]) == 0
    assert "written 0, already in lake 29, duplicates in input 0, rejected 0, dropped by the " \
           "mapping 1" in capsys.readouterr().out


@pytest.mark.parametrize("extra,message", [
    (["--column", "events.user_id"], "--column 'events.user_id': expected TABLE.FIELD=COLUMN"),
    (["--column", "clicks.user_id=v"], "where TABLE is one of events, items, users"),
    (["--event-type", "view"], "--event-type 'view': expected VALUE=TYPE"),
    (["--event-type", "view=glance"], "'glance' is not an event type"),
    (["--timezone", "Nowhere/City"], "timezone must be an IANA time zone"),
    (["--mapping", "/does/not/exist.yaml"], "config file /does/not/exist.yaml not found"),
])
def test_bad_flags_exit_1_naming_them(tmp_path, capsys, extra, message):
    path = write_csv(tmp_path / "c.csv", clicks(3))
    assert main(["data", "import", "--events", str(path), "--out", str(tmp_path / "lake"),
                 *extra]) == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("extra", [["--batch-rows", "0"], ["--csv-delimiter", ";;"],
                                   ["--event-id-from", "a,,b"], ["--max-bad-fraction", "2"],
                                   ["--format", "xml"]])
def test_bad_flag_values_are_refused_by_the_parser(tmp_path, capsys, extra):
    with pytest.raises(SystemExit) as exit_:
        main(["data", "import", "--events", "x.csv", "--out", str(tmp_path / "lake"), *extra])
    assert exit_.value.code == 2
    assert extra[0] in capsys.readouterr().err


# -- what a review of the first version found ------------------------------------------------

def test_nanosecond_times_dates_and_bare_dates_in_a_zone(tmp_path):
    frame = clicks(3).assign(ts_ms=["2026-05-01T12:00:00.123456789Z", "2026-05-01",
                                    "2026-05-01 08:00:00.5"])
    m = mapping().with_changes("events", timestamp_unit="iso", timezone="Europe/Berlin")
    run(tmp_path / "lake", m, events=(str(write_csv(tmp_path / "c.csv", frame)),))
    assert events(tmp_path / "lake")["timestamp"].tolist() == [
        pd.Timestamp("2026-04-30T22:00:00Z"), pd.Timestamp("2026-05-01T06:00:00.5Z"),
        pd.Timestamp("2026-05-01T12:00:00.123456Z")]
    parquet = tmp_path / "c.parquet"
    stamps = pa.array([1_777_636_800_123_456_789, None, 1_777_636_800_000_000_000],
                      pa.timestamp("ns", tz="UTC"))
    pq.write_table(pa.table({"visitorid": ["a", "b", "c"], "itemid": ["i", "i", "i"],
                             "event": ["view"] * 3, "ts_ms": stamps}), parquet)
    done = run(tmp_path / "lake2", mapping().with_changes("events", timestamp_unit="auto"),
               max_bad_fraction=0.5, events=(str(parquet),)).tables["events"]
    assert (done.written, done.rejected) == (2, 1)  # the null time is missing, not a crash
    assert events(tmp_path / "lake2")["timestamp"].tolist() == [
        pd.Timestamp("2026-05-01T12:00:00Z"), pd.Timestamp("2026-05-01T12:00:00.123456Z")]


def test_integer_nanoseconds_with_nulls_stay_exact(tmp_path):
    parquet = tmp_path / "c.parquet"
    pq.write_table(pa.table({"visitorid": ["a", "b"], "itemid": ["i", "i"],
                             "event": ["view", "view"],
                             "ts_ms": pa.array([1_777_636_800_123_456_999, None], pa.int64())}),
                   parquet)
    run(tmp_path / "lake", mapping().with_changes("events", timestamp_unit="ns"),
        max_bad_fraction=0.5, events=(str(parquet),))
    assert events(tmp_path / "lake")["timestamp"].tolist() == [
        pd.Timestamp("2026-05-01T12:00:00.123456Z")]
    text = write_csv(tmp_path / "c.csv", clicks(1).assign(ts_ms=["1777636800123456999"]))
    run(tmp_path / "lake2", mapping().with_changes("events", timestamp_unit="ns"),
        events=(str(text),))
    assert events(tmp_path / "lake2")["timestamp"].tolist() == [
        pd.Timestamp("2026-05-01T12:00:00.123456Z")]


def test_json_keys_absent_from_a_batch_are_null_there(tmp_path):
    records = [{**r, "ts_ms": int(r["ts_ms"])} for r in clicks(30).to_dict("records")]
    for record in records[:20]:
        record["stars"] = 4
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    m = mapping().with_changes("events", columns={"rating": "stars"})
    report = import_data(Lake(tmp_path / "lake", create=True), Sources(events=(str(path),)), m,
                         batch_rows=10, progress=False)
    assert report.tables["events"].written == 30
    assert events(tmp_path / "lake")["rating"].notna().sum() == 20


def test_blank_lines_and_quirky_quotes_keep_every_row_and_its_line(tmp_path):
    rows = ["ts_ms,visitorid,event,itemid"]
    pad = "x" * 50
    for i in range(150_000):  # 12 MB: Arrow reads blocks of 4 MB, one ahead
        rows.append(f"{T0_MS + i},v{pad}{i % 50},view,i{i % 70}")
    rows[10] = f'{T0_MS + 9},"v"x,view,i1'  # Arrow reads vx; Python's strict reader refuses
    rows[140_000] = ""  # a blank line in Arrow's third block: Python's reader from there
    rows[145_000] = "1,2"  # line 145001: malformed
    path = tmp_path / "c.csv"
    path.write_text("\n".join(rows) + "\n")
    assert path.stat().st_size > 10 * 2 ** 20
    # batches of 1,000: Arrow has given the quirky row (and 50K others) before the switch
    done = run(tmp_path / "lake", batch_rows=1_000, events=(str(path),)).tables["events"]
    assert (done.written, done.rejected) == (149_998, 1)
    entry = read_dead_letter(done.dead_letters[-1])[0]
    assert entry["location"] == f"{path}:145001"


def test_a_dropped_row_is_not_also_rejected(tmp_path):
    frame = clicks(30)
    frame.loc[3, ["event", "ts_ms"]] = ["heartbeat", "never"]
    done = run(tmp_path / "lake", mapping().with_changes("events",
                                                         drop_event_types=("heartbeat",)),
               events=(str(write_csv(tmp_path / "c.csv", frame)),)).tables["events"]
    assert (done.written, done.rejected, done.dropped) == (29, 0, 1)


def test_json_tags_mixing_lists_and_text_stay_lists(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps({"itemid": "i0", "labels": ["a", "b"]}) + "\n"
                    + json.dumps({"itemid": "i1", "labels": "c"}) + "\n")
    run(tmp_path / "lake", ImportMapping.from_dict({"items": {"columns": {
        "item_id": "itemid", "tags": "labels"}}}), items=(str(path),))
    items = Lake(tmp_path / "lake").read("items").to_pandas().set_index("item_id")["tags"]
    assert [list(items["i0"]), list(items["i1"])] == [["a", "b"], ["c"]]


def test_sql_types_columns_checked_first_and_no_password_in_messages(tmp_path):
    from feast_support import PG, require_services

    require_services()
    import psycopg

    table = f"import_test_{uuid.uuid4().hex[:8]}"
    dsn = f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{PG['database']}"
    write_csv(tmp_path / "items.csv", catalogue())
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f"CREATE TABLE {table} (visitorid uuid, itemid text, event text, "
                           "ts_ms bigint, extra jsonb)")
        connection.execute(f"INSERT INTO {table} VALUES ('8f14e45f-ceea-467f-a0e6-1f5c3d8b7a10',"
                           f" 'i1', 'view', {T0_MS}, '{{\"a\": 1}}')")
        try:
            report = import_data(Lake(tmp_path / "lake", create=True), Sources(
                events_sql=(dsn, f"SELECT * FROM {table}")), mapping(), progress=False)
            assert report.tables["events"].written == 1
            assert events(tmp_path / "lake")["user_id"].tolist() == [
                "8f14e45f-ceea-467f-a0e6-1f5c3d8b7a10"]
            with pytest.raises(SchemaError, match="'visitorid' \\(mapped to user_id\\) is not "
                                                  "in the --events-sql query"):
                run(tmp_path / "lake2", items=(str(tmp_path / "items.csv"),),
                    events_sql=(dsn, f"SELECT itemid, event, ts_ms FROM {table}"))
            assert Lake(tmp_path / "lake2").read("items").num_rows == 0
        finally:
            connection.execute(f"DROP TABLE {table}")
    with pytest.raises(SourceError, match="cannot connect") as error:
        run(tmp_path / "lake3", events_sql=("postgresql://someone:s3cret@127.0.0.1:1/db",
                                            "SELECT 1"))
    assert "s3cret" not in str(error.value)
