"""A user's recent items, most recent first, as of a point in time."""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

from recsys.data.records import US_PER_S


class HistoryEntry(NamedTuple):
    item_id: str
    category: str | None
    ts_us: int


class History:
    """At most ``length`` entries, most recent first. Engaging with the same item again right
    after (click, then watch, then like) refreshes its entry instead of adding a copy."""

    def __init__(self, length: int):
        self._entries: deque[HistoryEntry] = deque(maxlen=length)

    def add(self, item_id: str, category: str | None, ts_us: int) -> None:
        if self._entries and self._entries[0].item_id == item_id:
            self._entries.popleft()
        self._entries.appendleft(HistoryEntry(item_id, category, ts_us))

    def __len__(self) -> int:
        return len(self._entries)

    def columns(self, now_us: int) -> dict[str, list]:
        """The history as columns: ids, categories and seconds between each entry and now."""
        return {
            "history_item_ids": [e.item_id for e in self._entries],
            "history_categories": [e.category for e in self._entries],
            "history_gaps_s": [(now_us - e.ts_us) / US_PER_S for e in self._entries],
        }
