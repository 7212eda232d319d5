"""Events shuffled as compact blocks keyed by shard, not one element per user or per item.

The feature build groups every event twice: by user (timelines) and by item (item tables).
Shuffling one element per user, then one per (user, item), moved millions of small Python
objects between workers: on the DaskRunner their pickling, and the memory they held while
waiting, were most of the job, and at 10M events the workers spilled to disk. Here each
shuffle carries at most ``shards`` x (input bundles) blocks: a block is the events of one
shard's keys from one input bundle, packed column by column into one ``bytes`` value (repeated
strings stored once). The consumer unpacks a shard's blocks and groups by the real key itself.

Guarantees: ``unpack_events(pack_events(events)) == events`` (the same order and values);
:func:`shard_of` is the same in every process (it does not use Python's salted ``hash``).
"""

from __future__ import annotations

import pickle
import zlib
from typing import Callable, Iterable, Sequence

from recsys.data.records import Event

DEFAULT_SHARDS = 256
_TEXT_COLUMNS = tuple(Event._fields.index(name) for name in (
    "event_id", "user_id", "item_id", "event_type", "device", "country", "language",
    "request_id"))


def shard_of(key: str, shards: int) -> int:
    """A stable shard in ``[0, shards)`` for ``key``."""
    return zlib.crc32(key.encode("utf-8")) % shards


def pack_events(events: Sequence[Event]) -> bytes:
    """Events -> one bytes value, column by column; equal strings are pickled once."""
    columns = list(zip(*events))
    for i in _TEXT_COLUMNS if columns else ():
        seen: dict[str, str] = {}
        columns[i] = tuple([value if value is None else seen.setdefault(value, value)
                            for value in columns[i]])
    return pickle.dumps(tuple(columns), protocol=pickle.HIGHEST_PROTOCOL)


def unpack_events(block: bytes) -> list[Event]:
    """The events :func:`pack_events` packed, in their order."""
    return [Event(*row) for row in zip(*pickle.loads(block))]


def blocks_by_shard(events: Iterable[Event], key: Callable[[Event], str],
                    shards: int) -> list[tuple[int, bytes]]:
    """Events -> (shard, packed events whose ``key`` falls in that shard), one per shard hit."""
    grouped: dict[int, list[Event]] = {}
    for event in events:
        grouped.setdefault(shard_of(key(event), shards), []).append(event)
    return [(shard, pack_events(part)) for shard, part in grouped.items()]


def group_blocks(blocks: Iterable[bytes], key: Callable[[Event], str]
                 ) -> list[tuple[str, list[Event]]]:
    """A shard's blocks -> (key, its events), sorted by key (a deterministic order)."""
    grouped: dict[str, list[Event]] = {}
    for block in blocks:
        for event in unpack_events(block):
            grouped.setdefault(key(event), []).append(event)
    return sorted(grouped.items())


def user_of(event: Event) -> str:
    return event.user_id


def item_of(event: Event) -> str:
    return event.item_id


__all__ = ["DEFAULT_SHARDS", "blocks_by_shard", "group_blocks", "item_of", "pack_events",
           "shard_of", "unpack_events", "user_of"]
