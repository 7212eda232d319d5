"""The feature build's events, read from the lake straight into blocks per user shard.

Each batch of lake rows is parsed and packed in the step that reads it
(``beam_jobs/event_blocks.py``), and that step's single output holds the blocks, the dead
letters and the batch's count. So the rows read and the parsed records, large Python objects,
are never a step's output: on the DaskRunner a collection with two consumers is held until both
have run, and the outputs of every step run in one task are held as long as the task's result
(``ReadParquetBatches``); at 10M events the raw rows held either way were most of the workers'
memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, NamedTuple

import apache_beam as beam

from beam_jobs.event_blocks import blocks_by_shard, user_of
from beam_jobs.lake_io import DEAD_LETTER, ParseRecords, ReadParquetBatches, RowBatch, read_events
from recsys.data.records import Event, parse_event


class BlockBatch(NamedTuple):
    """One batch read: where from, its rows, its records packed per shard, its bad rows."""
    source: str
    read: int
    blocks: list[tuple[int, bytes]]
    dead_letters: list[str]


class ParseIntoBlocks(ParseRecords):
    """:class:`RowBatch` es -> one :class:`BlockBatch` each: the rows parsed (bad ones as
    dead-letter lines with their reason), the records packed in blocks per shard of ``key``."""

    def __init__(self, kind: str, parser: Callable[[dict], Any], key: Callable[[Event], str],
                 shards: int):
        super().__init__(kind, parser)
        self.key, self.shards = key, shards

    def process(self, batch: RowBatch):
        for parsed in super().process(batch.rows):
            yield BlockBatch(batch.source, len(batch.rows),
                             blocks_by_shard(parsed.records, self.key, self.shards),
                             parsed.dead_letters)


class UserBlocks(NamedTuple):
    """(user shard, block) pairs, the dead-letter lines and the ``events_read`` tally."""
    blocks: Any
    dead_letter: Any
    tally: Any


def read_user_blocks(p: beam.Pipeline, lake: Path, also: beam.PCollection | None,
                     shards: int) -> UserBlocks:
    """The lake's events in blocks per user shard. With ``also`` (RowBatches of event rows
    from another source) the union, one copy per event id, as :func:`read_events` gives it
    (that deduplication is per event), packed after."""
    if also is not None:
        events = read_events(p, lake, also)
        return UserBlocks(events.batches | "UserBlocks" >> beam.FlatMap(blocks_by_shard,
                                                                        user_of, shards),
                          events[DEAD_LETTER], events.tally)
    parsed = p | "ReadEvents" >> ReadParquetBatches(
        str(lake / "events" / "*" / "part-*.parquet"),
        then=ParseIntoBlocks("events", parse_event, user_of, shards).process)
    return UserBlocks(parsed | "UserBlocks" >> beam.FlatMap(lambda batch: batch.blocks),
                      parsed | "EventDeadLetters" >> beam.FlatMap(
                          lambda batch: batch.dead_letters),
                      parsed | "EventTally" >> beam.Map(
                          lambda batch: ("events_read", batch.read, batch.source)))


__all__ = ["BlockBatch", "ParseIntoBlocks", "UserBlocks", "read_user_blocks"]
