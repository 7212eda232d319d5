"""A user's session state as the stream sees it, updated one event at a time, and the
``user_session`` feature row it gives (the same columns and meaning as the Beam job's latest
session state, ``beam_jobs.timeline``).

Guarantees of :meth:`SessionState.add`:
* The recent items are the last ``history_length`` engagements (types in
  ``history_event_types``), most recent first; engaging with the most recent item again
  (click, then watch) refreshes it instead of adding a copy, as in the Beam jobs.
* A session ends after more than ``session_gap_s`` without events; its length counts every
  event in it, impressions included.
* A late event (older than the newest one seen) goes to its place in time: into the recent
  items if it is recent enough, and into the current session if it is within
  ``session_gap_s`` of its start (moving the start back); it never moves the session's end.
  So a session's state does not depend on the order its events arrive in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from beam_jobs.config import FeatureConfig
from beam_jobs.records import US_PER_S, Event
from recsys.features.tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP

HISTORY_EVENT_TYPES = FeatureConfig().history_event_types  # as the Beam jobs


@dataclass
class SessionState:
    recent: list[tuple[str, str | None, int]] = field(default_factory=list)  # item, cat, ts
    session_start_us: int = 0
    session_length: int = 0
    last_event_us: int = 0
    version: int = 0

    def add(self, event: Event, category: str | None, history_length: int,
            session_gap_s: int) -> None:
        ts = event.ts_us
        gap_us = session_gap_s * US_PER_S
        if self.session_length == 0 or ts - self.last_event_us > gap_us:
            self.session_start_us, self.session_length = ts, 1
        elif ts >= self.session_start_us - gap_us:
            self.session_start_us = min(self.session_start_us, ts)
            self.session_length += 1
        self.last_event_us = max(self.last_event_us, ts)
        if event.event_type in HISTORY_EVENT_TYPES:
            self._remember(event.item_id, category, ts, history_length)
        self.version += 1

    def _remember(self, item_id: str, category: str | None, ts: int, length: int) -> None:
        position = 0
        while position < len(self.recent) and self.recent[position][2] > ts:
            position += 1
        if position == 0 and self.recent and self.recent[0][0] == item_id:
            self.recent[0] = (item_id, category, ts)
        else:
            self.recent.insert(position, (item_id, category, ts))
        del self.recent[length:]

    def feature_row(self, user_id: str) -> dict[str, Any]:
        """The ``user_session`` row (event time = the newest event)."""
        return {
            "user_id": user_id, EVENT_TIMESTAMP: self.last_event_us,
            CREATED_TIMESTAMP: self.last_event_us,
            "session_recent_item_ids": [item for item, _, _ in self.recent],
            "session_recent_categories": [cat for _, cat, _ in self.recent],
            "session_recent_event_at_s": [ts // US_PER_S for _, _, ts in self.recent],
            "session_length": self.session_length,
            "session_started_at_s": self.session_start_us // US_PER_S,
            "session_last_event_at_s": self.last_event_us // US_PER_S,
        }

    def to_json(self) -> dict[str, Any]:
        return {"recent": [list(r) for r in self.recent], "start": self.session_start_us,
                "length": self.session_length, "last": self.last_event_us,
                "version": self.version}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "SessionState":
        return cls([tuple(r) for r in raw["recent"]], raw["start"], raw["length"], raw["last"],
                   raw["version"])


__all__ = ["SessionState", "HISTORY_EVENT_TYPES"]
