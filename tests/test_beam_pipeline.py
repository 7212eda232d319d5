"""Beam transforms under TestPipeline with exact expected outputs, and whole runs on a lake."""

import datetime as dt
import json
from types import SimpleNamespace

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_jobs.event_blocks import blocks_by_shard, item_of, shard_of, unpack_events, user_of
from beam_jobs.lake_io import DEAD_LETTER, ParseRows, table_rows
from beam_jobs.pipeline import WriteUserTables, run
from recsys.data.lake import Lake
from recsys.data.records import US_PER_S, Event, Item, parse_event
from recsys.data.synthetic import SyntheticConfig, generate
from recsys.errors import BadRecordRatioError
from recsys.features.config import FeatureConfig

BASE = 1_767_225_600  # 2026-01-01T00:00:00Z
UTC = dt.timezone.utc


def us(seconds: float) -> int:
    return int((BASE + seconds) * US_PER_S)


ITEMS = {"i1": Item("i1", "news"), "i2": Item("i2", "music")}
E1 = Event("e1", "u", "i1", "click", us(100), dwell_time_s=20.0)
E2 = Event("e2", "u", "i2", "impression", us(200))
E3 = Event("e3", "u", "i2", "click", us(200), dwell_time_s=5.0)
E4 = Event("e4", "u", "i1", "like", us(2501))  # 2301 s after e3: a new session


def _seq(event, session, position, ids, cats, gaps):
    return {"event_id": event.event_id, "user_id": "u", "item_id": event.item_id,
            "event_type": event.event_type, "event_timestamp": event.ts_us,
            "session_id": f"u/{session}", "session_position": position,
            "history_length": len(ids), "history_item_ids": ids, "history_categories": cats,
            "history_gaps_s": gaps}


EXPECTED_SEQUENCES = [
    _seq(E1, 0, 0, [], [], []),
    _seq(E2, 0, 1, ["i1"], ["news"], [100.0]),
    _seq(E3, 0, 2, ["i1"], ["news"], [100.0]),  # same microsecond as e2: not in its history
    _seq(E4, 1, 0, ["i2", "i1"], ["music", "news"], [2301.0, 2401.0]),
]



def _handed_on(shard_and_block, shards):
    """An item block -> its (item_id, event_id) pairs, each only if its item is in the shard
    the block is keyed by."""
    shard, block = shard_and_block
    return [(e.item_id, e.event_id) for e in unpack_events(block)
            if shard_of(e.item_id, shards) == shard]


def _user_tables(out, events, cfg, item_events):
    """WriteUserTables over ``events`` in user blocks from two input batches: checks it emits
    ``item_events`` ((item_id, event_id) pairs) in blocks keyed by their item's shard, returns
    the tables it wrote (rows as the lake reads them, timestamps in microseconds)."""
    with BeamTestPipeline() as p:
        emitted = (p
                   | beam.Create([events[:2], events[2:]])
                   | beam.FlatMap(blocks_by_shard, user_of, 4)
                   | beam.GroupByKey()
                   | beam.ParDo(WriteUserTables(out, ITEMS, 20_455, cfg, item_shards=3))
                   | beam.FlatMap(_handed_on, 3))
        assert_that(emitted, equal_to(item_events))
    tables = {name: [row for path in sorted((out / name).glob("*.parquet"))
                     for row in table_rows(pq.read_table(path))]
              for name in ("session_sequences", "training_examples")}
    return SimpleNamespace(**tables)


def test_sequences_are_exact_for_out_of_order_and_late_events(tmp_path):
    # the late e4 first, the rest shuffled
    out = _user_tables(tmp_path, [E4, E3, E1, E2], FeatureConfig(),
                       [("i1", "e1"), ("i1", "e4"), ("i2", "e2"), ("i2", "e3")])
    assert sorted(out.session_sequences, key=lambda r: r["event_id"]) == EXPECTED_SEQUENCES
    examples = sorted((r["example_id"], r["split"], r["history_item_ids"])
                      for r in out.training_examples)
    # e3's 5 s dwell is below the 10 s threshold; e4 is a like in a new session
    assert examples == [("e1", "train", []), ("e4", "train", ["i2", "i1"])]


def test_temporal_split_keeps_features_to_the_training_events(tmp_path):
    # no test event reaches item features
    out = _user_tables(tmp_path, [E1, E2, E3, E4], FeatureConfig(split="temporal"),
                       [("i1", "e1"), ("i2", "e2"), ("i2", "e3")])
    # two positives (e1, e4): max(1, floor(0.4)) = 1 test example, e4
    assert sorted(r["event_id"] for r in out.session_sequences) == ["e1", "e2", "e3"]
    assert sorted((r["example_id"], r["split"], r["history_item_ids"])
                  for r in out.training_examples) == [("e1", "train", []),
                                                      ("e4", "test", ["i2", "i1"])]


def test_parse_rows_sends_bad_rows_to_the_dead_letter_with_reasons():
    good = {"event_id": "e1", "user_id": "u", "item_id": "i", "event_type": "click",
            "timestamp": us(0)}
    bad = {**good, "event_id": "e2", "event_type": "teleport"}
    with BeamTestPipeline() as p:
        parsed = p | beam.Create([good, bad]) | ParseRows("events", parse_event)
        assert_that(parsed.records, equal_to([Event("e1", "u", "i", "click", us(0))]))
        assert_that(parsed[DEAD_LETTER] | beam.Map(json.loads), equal_to([
            {"table": "events", "reason": "unknown event_type 'teleport'", "record": bad}]),
            label="dead letter")


# -- whole runs on a lake ----------------------------------------------------------------

@pytest.fixture
def small_lake(tmp_path):
    lake = Lake(tmp_path / "lake", create=True)
    generate(SyntheticConfig(users=60, items=200, days=3, seed=5, end_date=dt.date(2026, 1, 5)),
             lake, progress=False)
    return lake


def _tables(out):
    return {t: pq.read_table(out / t).num_rows for t in
            ("user_features", "item_features", "item_catalogue", "user_profile", "user_session",
             "session_sequences", "training_examples")}


def test_run_writes_every_table_and_reruns_replace_them(small_lake, tmp_path):
    out = tmp_path / "features"
    first = run(["--lake", str(small_lake.root), "--output", str(out)])
    events = small_lake.read("events").num_rows
    assert first.counters["events_read"] == events and first.counters.get("events_bad", 0) == 0
    counts = _tables(out)
    assert counts["session_sequences"] == events
    assert counts["item_catalogue"] == 200 and counts["user_profile"] == 60
    assert all(n > 0 for n in counts.values()), counts
    run(["--lake", str(small_lake.root), "--output", str(out)])
    assert _tables(out) == counts  # replaced, not appended
    assert not [p for p in out.parent.iterdir() if "staging" in p.name]


def test_late_events_in_a_later_lake_write_give_the_same_outputs(tmp_path):
    rows = [{"event_id": f"e{i}", "user_id": "u", "item_id": f"i{i % 3}", "event_type": "click",
             "timestamp": dt.datetime(2026, 1, 1, 10, i, tzinfo=UTC), "dwell_time_s": 30.0}
            for i in range(10)]
    at_once, late = Lake(tmp_path / "a", create=True), Lake(tmp_path / "b", create=True)
    at_once.write_events(rows, "t")
    late.write_events(rows[5:], "t")
    late.write_events(rows[:5], "t late")  # earlier timestamps, written afterwards
    outs = []
    for lake in (at_once, late):
        out = tmp_path / f"out-{lake.root.name}"
        run(["--lake", str(lake.root), "--output", str(out)])
        table = pq.read_table(out / "session_sequences").sort_by("event_id")
        outs.append(table.drop_columns([]).to_pylist())
    assert outs[0] == outs[1]
    assert outs[0][9]["history_item_ids"][:3] == ["i2", "i1", "i0"]


def _corrupt(lake: Lake, n_bad: int):
    """Write rows into the lake behind validation's back, as a foreign writer could."""
    schema = pa.schema([("event_id", pa.string()), ("user_id", pa.string()),
                        ("item_id", pa.string()), ("event_type", pa.string()),
                        ("timestamp", pa.timestamp("us", tz="UTC"))])
    part = lake.root / "events" / "event_date=2026-01-04"
    rows = [{"event_id": f"bad{i}", "user_id": "u1", "item_id": "i1", "event_type": "teleport",
             "timestamp": dt.datetime(2026, 1, 4, tzinfo=UTC)} for i in range(n_bad)]
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), part / "part-zz-foreign.parquet")


def test_bad_records_within_the_ratio_go_to_the_dead_letter(small_lake, tmp_path):
    _corrupt(small_lake, 3)
    out = tmp_path / "features"
    result = run(["--lake", str(small_lake.root), "--output", str(out)])
    assert result.counters["events_bad"] == 3
    lines = [json.loads(line) for f in (out / "_dead_letter").glob("*.jsonl")
             for line in f.read_text().splitlines()]
    assert sorted(line["record"]["event_id"] for line in lines) == ["bad0", "bad1", "bad2"]
    assert {line["reason"] for line in lines} == {"unknown event_type 'teleport'"}


def test_too_many_bad_records_fail_loudly_and_keep_the_previous_outputs(small_lake, tmp_path):
    out = tmp_path / "features"
    run(["--lake", str(small_lake.root), "--output", str(out)])
    before = _tables(out)
    _corrupt(small_lake, 50)
    with pytest.raises(BadRecordRatioError, match=r"50 of .* records are bad .* --max_bad_ratio "
                                                  r"0.10%\); the outputs in .* were left"):
        run(["--lake", str(small_lake.root), "--output", str(out), "--max_bad_ratio", "0.001"])
    assert _tables(out) == before
    failed = tmp_path / "features.failed-dead-letter"
    assert sum(len(f.read_text().splitlines()) for f in failed.glob("*.jsonl")) == 50


def test_bad_options_are_config_errors(tmp_path):
    from recsys.errors import ConfigError
    with pytest.raises(ConfigError, match="is not a recsys lake"):
        run(["--lake", str(tmp_path), "--output", str(tmp_path / "o")])
    with pytest.raises(ConfigError, match="--output is required"):
        run(["--lake", str(tmp_path)])
    with pytest.raises(ConfigError, match="split must be one of"):
        run(["--lake", str(tmp_path), "--output", "o", "--split", "random"])


@pytest.mark.slow
def test_tfrecord_examples_equal_the_parquet_examples(small_lake, tmp_path):
    out = tmp_path / "features"
    run(["--lake", str(small_lake.root), "--output", str(out), "--tfrecord"])
    import tensorflow as tf

    files = sorted(str(f) for f in (out / "training_examples_tfrecord").glob("*.tfrecord.gz"))
    parsed = {}
    for raw in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        example = tf.train.Example.FromString(raw.numpy())
        feats = example.features.feature
        parsed[feats["example_id"].bytes_list.value[0].decode()] = (
            feats["user_id"].bytes_list.value[0].decode(),
            feats["event_timestamp"].int64_list.value[0],
            [v.decode() for v in feats["history_item_ids"].bytes_list.value],
            round(feats["label_weight"].float_list.value[0], 5))
    table = pq.read_table(out / "training_examples").to_pylist()
    expected = {r["example_id"]: (r["user_id"],
                                  int(r["event_timestamp"].timestamp() * 1_000_000),
                                  r["history_item_ids"], round(r["label_weight"], 5))
                for r in table}
    assert parsed == expected and len(parsed) > 10


def _item_tables(out, items, horizon_day, events_by_item, cfg=None):
    """WriteItemTables over (item_id, [events]) slices, each packed in item blocks: the rows
    of the tables it wrote, as the lake reads them (timestamps in microseconds)."""
    from beam_jobs.pipeline import WriteItemTables

    with BeamTestPipeline() as p:
        (p
         | beam.Create(events_by_item)
         | beam.FlatMap(lambda kv: blocks_by_shard(kv[1], item_of, 2))
         | beam.GroupByKey()
         | beam.ParDo(WriteItemTables(out, items, horizon_day, cfg or FeatureConfig())))
    return {name: [row for path in sorted((out / name).glob("*.parquet"))
                   for row in table_rows(pq.read_table(path))]
            for name in ("item_features", "item_stream")}


def test_item_features_are_exact_per_item(tmp_path):
    from recsys.data.records import US_PER_DAY

    day0 = us(0) // US_PER_DAY  # 2026-01-01
    items = {"i1": Item("i1", "news", duration_s=100.0, created_us=day0 * US_PER_DAY)}
    rows = _item_tables(tmp_path, items, day0 + 5, [
        ("i1", [Event("a", "u1", "i1", "impression", us(10)),
                Event("b", "u1", "i1", "click", us(20), dwell_time_s=30.0)]),
        ("i1", [Event("c", "u1", "i1", "watch", us(50), watch_time_s=25.0)]),
        ("i1", [Event("d", "u2", "i1", "impression", us(86_400 * 3))]),  # day 3, out of order
    ])["item_features"]
    summary = sorted((
        r["event_timestamp"] // US_PER_DAY - day0, r["item_impressions_1d"],
        r["item_impressions_7d"], r["item_clicks_7d"], r["item_ctr_7d"],
        r["item_avg_watch_fraction_30d"], r["item_age_days"]) for r in rows)
    # Snapshots at the midnights after day 0 (d1), day 0 + 1d window (d2), day 3 (d4),
    # day 3 + 1d (d5); later exits are past the horizon (day 5).
    assert summary == [
        (1, 1, 1, 1, 1.0, 0.25, 1.0),
        (2, 0, 1, 1, 1.0, 0.25, 2.0),
        (4, 1, 2, 1, 0.5, 0.25, 4.0),
        (5, 0, 2, 1, 0.5, 0.25, 5.0),
    ]
