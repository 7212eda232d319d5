"""The batch side of the fresh item counters: per item, the ``item_stream`` row as of its newest
event, with the stream worker's definition (``recsys.features.item_counters``)."""

from __future__ import annotations

from typing import Iterable

from recsys.data.records import Event
from recsys.features.item_counters import count_events, item_stream_row


def item_stream_row_of(item_id: str, events: Iterable[Event],
                       engagement_types: Iterable[str]) -> dict:
    """An item's events (any order) -> its ``item_stream`` row."""
    return item_stream_row(item_id, *count_events(
        ((event.event_type, event.ts_us) for event in events), engagement_types))


__all__ = ["item_stream_row_of"]
