import json

import pytest

from conftest import event
from recsys.data.dead_letter import read_dead_letter
from recsys.data.lake import Lake
from recsys.errors import BadRecordRatioError, LakeError

DAY1 = "2026-10-01T12:00:00Z"
DAY2 = "2026-10-02T00:00:00Z"  # exactly midnight: belongs to the 2nd


def _events(n: int, when: str = DAY1, prefix: str = "e") -> list[dict]:
    return [event(event_id=f"{prefix}{i}", timestamp=when) for i in range(n)]


def test_new_lake_records_format_and_versions(tmp_path):
    Lake(tmp_path / "lake", create=True)
    meta = json.loads((tmp_path / "lake" / "_lake.json").read_text())
    assert meta == {"format": "recsys-lake", "format_version": 1,
                    "schema_versions": {"events": 1, "items": 1, "users": 1, "exposures": 1,
                                        "decisions": 1}}


def test_opening_a_missing_lake_says_how_to_make_one(tmp_path):
    with pytest.raises(LakeError, match="is not a recsys lake .*`recsys data generate`"):
        Lake(tmp_path / "nothing")


def test_refuses_to_turn_a_non_empty_directory_into_a_lake(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(LakeError, match="exists, is not empty and is not a recsys lake"):
        Lake(tmp_path, create=True)


def test_corrupt_and_newer_lake_metadata(tmp_path):
    root = tmp_path / "lake"
    Lake(root, create=True)
    for corrupt in ("{not json", "[]", '{"format": "recsys-lake"}',
                    '{"format": "recsys-lake", "format_version": 1, "schema_versions": {"events": '
                    '"x"}}'):
        (root / "_lake.json").write_text(corrupt)
        with pytest.raises(LakeError, match="is corrupt"):
            Lake(root)
    (root / "_lake.json").write_text(json.dumps(
        {"format": "recsys-lake", "format_version": 1, "schema_versions": {"events": 2}}))
    with pytest.raises(LakeError, match="written by a newer recsys"):
        Lake(root)


def test_events_are_partitioned_by_utc_date(lake, policy):
    report = lake.write_events(_events(3) + _events(2, DAY2, "f"), "test", policy=policy)
    assert report.written == 5 and sorted(report.partitions) == ["2026-10-01", "2026-10-02"]
    dirs = sorted(p.name for p in (lake.root / "events").iterdir())
    assert dirs == ["event_date=2026-10-01", "event_date=2026-10-02"]
    table = lake.read("events")
    by_date = dict(zip(*[table.column(c).to_pylist() for c in ("event_id", "event_date")]))
    assert str(by_date["f0"]) == "2026-10-02" and str(by_date["e0"]) == "2026-10-01"
    assert table.column("ingested_at").null_count == 0


def test_writing_the_same_input_twice_adds_nothing(lake, policy):
    first = lake.write_events(_events(10), "test", policy=policy)
    second = lake.write_events(_events(10), "test", policy=policy)
    assert (first.written, second.written, second.already_in_lake) == (10, 0, 10)
    assert lake.read("events").num_rows == 10
    third = lake.write_events(_events(12), "test", policy=policy)
    assert (third.written, third.already_in_lake) == (2, 10)
    assert lake.read("events").num_rows == 12


def test_rejected_records_go_to_a_dead_letter_file_with_reasons(lake, policy):
    records = _events(20) + [event(event_id="bad", event_type="teleport")]
    report = lake.write_events(records, "unit-test", policy=policy)
    assert (report.received, report.written, report.rejected) == (21, 20, 1)
    entries = read_dead_letter(report.dead_letter)
    assert entries == [{
        "table": "events", "source": "unit-test", "location": "row 20",
        "reason": "unknown event_type 'teleport' (expected one of: impression, click, watch, "
                  "like, dislike, skip, share, rating)",
        "record": {**event(event_id="bad", event_type="teleport")},
    }]
    assert "rejected 1 (reasons in" in report.summary()


def test_too_many_bad_records_writes_nothing_and_says_why(lake, policy):
    records = _events(5) + [event(event_id=f"b{i}", dwell_time_s=-1) for i in range(5)]
    with pytest.raises(BadRecordRatioError, match=r"5 of 10 events records from test are invalid "
                                                  r"\(50.0% > --max-bad-fraction 10.0%\); "
                                                  "nothing was written"):
        lake.write_events(records, "test", policy=policy, max_bad_fraction=0.1)
    assert lake.read("events").num_rows == 0
    assert len(list((lake.root / "_dead_letter" / "events").glob("*.jsonl"))) == 1


def test_no_temporary_files_remain(lake, policy):
    lake.write_events(_events(3), "test", policy=policy)
    leftovers = [p for p in lake.root.rglob(".tmp-*")]
    assert leftovers == []


ITEMS = [{"item_id": "i1", "category": "news", "tags": ["a", "b"]},
         {"item_id": "i2", "category": "music", "tags": None}]


def test_catalogue_rows_are_added_once_and_updated_when_changed(lake, policy):
    assert lake.write_items(ITEMS, "t", policy=policy).written == 2
    again = lake.write_items(ITEMS, "t", policy=policy)
    assert (again.written, again.already_in_lake) == (0, 2)
    changed = [{**ITEMS[0], "tags": ["a"]}, ITEMS[1], {"item_id": "i3"}]
    update = lake.write_items(changed, "t", policy=policy)
    assert (update.written, update.already_in_lake) == (2, 1)
    latest = {r["item_id"]: r for r in lake.read("items").to_pylist()}
    assert sorted(latest) == ["i1", "i2", "i3"]
    assert latest["i1"]["tags"] == ["a"]
    assert len(list((lake.root / "items").glob("part-*.parquet"))) == 2


def test_reading_an_empty_lake(lake):
    assert lake.read("events").num_rows == 0
    assert lake.read("items").schema.names[0] == "item_id"
    assert lake.read("users", columns=["user_id"]).num_rows == 0


def test_parquet_files_carry_the_schema_version(lake, policy):
    lake.write_events(_events(1), "test", policy=policy)
    import pyarrow.parquet as pq
    (path,) = list((lake.root / "events").rglob("part-*.parquet"))
    meta = pq.read_schema(path).metadata
    assert meta[b"recsys.schema_version"] == b"1" and meta[b"recsys.table"] == b"events"
