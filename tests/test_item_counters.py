"""Fresh item counters: one definition for the stream worker and the Beam job."""

from __future__ import annotations

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.testing.test_pipeline import TestPipeline as BeamPipeline

from beam_jobs.event_blocks import blocks_by_shard, item_of
from beam_jobs.lake_io import table_rows
from beam_jobs.pipeline import WriteItemTables
from beam_jobs.snapshots import day_of
from recsys.data.records import Event
from recsys.features.config import FeatureConfig
from recsys.features.item_counters import BUCKET_US, count_events, item_stream_row
from recsys.features.tables import ITEM_STREAM

ENGAGING = ("click", "watch", "like", "share", "rating")
MIN = 60 * 1_000_000
T0 = 1_800_000_000 * 1_000_000 // BUCKET_US * BUCKET_US  # a bucket boundary


def _row(events):
    counts, last = count_events(events, ENGAGING)
    return item_stream_row("i1", counts, last)


def test_windows_count_back_from_the_newest_event():
    newest = T0 + 2 * 86_400 * 1_000_000
    events = [("impression", newest), ("click", newest - 10 * MIN),
              ("watch", newest - 50 * MIN),          # same hour: 11th bucket back
              ("impression", newest - 61 * MIN),     # 13th bucket back: day only
              ("like", newest - 23 * 60 * MIN),
              ("click", newest - 24 * 60 * MIN - 5 * MIN)]  # older than the day: nowhere
    row = _row(events)
    assert row == {
        "item_id": "i1", "event_timestamp": newest, "created_timestamp": newest,
        "item_stream_impressions_1h": 1, "item_stream_clicks_1h": 1,
        "item_stream_engagements_1h": 2, "item_stream_impressions_24h": 2,
        "item_stream_clicks_24h": 1, "item_stream_engagements_24h": 3,
        "item_stream_last_event_at_s": newest // 1_000_000}
    assert set(row) == set(ITEM_STREAM.arrow_schema().names)


def test_counts_do_not_depend_on_event_order():
    events = [("click", T0 + i * 7 * MIN) for i in range(40)] + [("impression", T0)]
    assert _row(events) == _row(list(reversed(events)))


def test_beam_rows_equal_the_worker_definition(tmp_path):
    """The feature build's item tables step writes, per item, the row the stream worker's
    definition gives for the same events, whatever slices they come in."""
    newest = T0 + 5 * 86_400 * 1_000_000
    times = [newest - k * 17 * MIN for k in range(120)]  # back over more than a day
    events = [Event(f"e{k}", "u1", "i1", ("impression", "click", "watch")[k % 3], ts)
              for k, ts in enumerate(times)]
    events.append(Event("x", "u2", "i2", "like", T0))
    expected = [_row([(e.event_type, e.ts_us) for e in events if e.item_id == "i1"]),
                item_stream_row("i2", *count_events([("like", T0)], ENGAGING))]
    cfg = FeatureConfig(history_event_types=ENGAGING)
    slices = [("i1", events[k:min(k + 50, 120)]) for k in range(0, 120, 50)] + [
        ("i2", events[-1:])]
    with BeamPipeline() as p:
        (p | beam.Create(slices)
         | beam.FlatMap(lambda kv: blocks_by_shard(kv[1], item_of, 3)) | beam.GroupByKey()
         | beam.ParDo(WriteItemTables(tmp_path, {}, day_of(newest) + 1, cfg)))
    written = [row for path in (tmp_path / ITEM_STREAM.name).glob("*.parquet")
               for row in table_rows(pq.read_table(path))]
    assert sorted(written, key=lambda r: r["item_id"]) == expected
