"""The batch side of the fresh item counters: per item, the ``item_stream`` row as of its newest
event (``recsys.features.item_counters``), combined without shuffling whole event lists."""

from __future__ import annotations

from collections import Counter

import apache_beam as beam

from recsys.data.records import Event
from recsys.features.item_counters import count_events, item_stream_row, oldest_kept_bucket


class ItemCountersFn(beam.CombineFn):
    """Events of one item -> (per-(kind, bucket) counts, newest time); buckets too old for
    any window are dropped as the newest time advances, so accumulators stay small."""

    def __init__(self, engagement_types: tuple[str, ...]):
        self.engagement_types = engagement_types

    def create_accumulator(self):
        return Counter(), 0

    def add_input(self, acc, event: Event):
        counts, last = count_events([(event.event_type, event.ts_us)], self.engagement_types)
        return self.merge_accumulators([acc, (counts, last)])

    def merge_accumulators(self, accumulators):
        merged: Counter = Counter()
        last = 0
        for counts, acc_last in accumulators:
            merged.update(counts)
            last = max(last, acc_last)
        oldest = oldest_kept_bucket(last)
        return Counter({key: n for key, n in merged.items() if key[1] >= oldest}), last

    def extract_output(self, acc):
        return acc


class ItemStreamRows(beam.PTransform):
    """(item_id, event) pairs -> one ``item_stream`` row per item."""

    def __init__(self, engagement_types: tuple[str, ...]):
        super().__init__()
        self.engagement_types = tuple(engagement_types)

    def expand(self, item_events):
        return (item_events
                | "Count" >> beam.CombinePerKey(ItemCountersFn(self.engagement_types))
                | "Row" >> beam.MapTuple(lambda item_id, acc: item_stream_row(item_id, *acc)))


__all__ = ["ItemStreamRows", "ItemCountersFn"]
