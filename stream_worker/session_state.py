"""A user's session state as the stream sees it, updated one event at a time, and the
``user_session`` feature row it gives (the same columns and meaning as the Beam job's latest
session state, ``beam_jobs.timeline``).

Guarantees of :meth:`SessionState.add`:
* The recent items are the last ``history_length`` engagements (types in
  ``history_event_types``), most recent first; engaging with the most recent item again
  (click, then watch) refreshes it instead of adding a copy, as in the Beam jobs.
* A session ends after more than ``session_gap_s`` without events; its length counts every
  event in it, impressions included.
* Sessions are kept as (start, end, count) chains of events with no gap over
  ``session_gap_s``; an event joins every chain it is within the gap of, merging them. So a
  late event (older than the newest one seen) goes to its place in time, may join two
  sessions into one, and the current session (the chain with the newest event) does not
  depend on the order its events arrive in. The ``MAX_SESSIONS_KEPT`` newest chains are
  kept: an event later than that is counted in a session of its own.
* A late event goes into the recent items at its place in time if it is recent enough.
* :meth:`from_feature_row` turns a ``user_session`` row back into a state, so that a user the
  stream holds no state for (new to its Redis, or expired) continues from the online store's
  row instead of starting an empty history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from recsys.data.records import US_PER_S, Event
from recsys.features.config import FeatureConfig
from recsys.features.tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP

HISTORY_EVENT_TYPES = FeatureConfig().history_event_types  # as the Beam jobs
MAX_SESSIONS_KEPT = 16


@dataclass
class SessionState:
    recent: list[tuple[str, str | None, int]] = field(default_factory=list)  # item, cat, ts
    sessions: list[tuple[int, int, int]] = field(default_factory=list)  # start, end, count
    version: int = 0

    @property
    def session_start_us(self) -> int:
        return self.sessions[-1][0] if self.sessions else 0

    @property
    def session_length(self) -> int:
        return self.sessions[-1][2] if self.sessions else 0

    @property
    def last_event_us(self) -> int:
        return self.sessions[-1][1] if self.sessions else 0

    def add(self, event: Event, category: str | None, history_length: int,
            session_gap_s: int) -> None:
        self._join(event.ts_us, session_gap_s * US_PER_S)
        if event.event_type in HISTORY_EVENT_TYPES:
            self._remember(event.item_id, category, event.ts_us, history_length)
        self.version += 1

    def _join(self, ts: int, gap_us: int) -> None:
        near = [s for s in self.sessions if s[0] - gap_us <= ts <= s[1] + gap_us]
        merged = (min([ts] + [s[0] for s in near]), max([ts] + [s[1] for s in near]),
                  1 + sum(s[2] for s in near))
        self.sessions = sorted([s for s in self.sessions if s not in near] + [merged],
                               key=lambda s: s[1])[-MAX_SESSIONS_KEPT:]

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

    @classmethod
    def from_feature_row(cls, row: Mapping[str, Any]) -> "SessionState":
        """The state a ``user_session`` row describes (as :meth:`feature_row` writes it): its
        recent items with their times, and its latest session as one chain."""
        ids = list(row.get("session_recent_item_ids") or [])
        categories = list(row.get("session_recent_categories") or [])
        times = list(row.get("session_recent_event_at_s") or [])
        recent = [(item, categories[n] if n < len(categories) else None,
                   int(times[n]) * US_PER_S if n < len(times) and times[n] is not None else 0)
                  for n, item in enumerate(ids)]
        length = int(row.get("session_length") or 0)
        start, last = row.get("session_started_at_s"), row.get("session_last_event_at_s")
        sessions = ([(int(start) * US_PER_S, int(last) * US_PER_S, length)]
                    if length and start is not None and last is not None else [])
        return cls(recent, sessions, 0)

    def to_json(self) -> dict[str, Any]:
        return {"recent": list(self.recent), "sessions": list(self.sessions),
                "version": self.version}  # tuples: JSON writes them as arrays

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "SessionState":
        """A state as :meth:`to_json` wrote it, or as the first format did (one session as
        ``start``, ``last``, ``length``)."""
        if "sessions" in raw:
            sessions = [tuple(s) for s in raw["sessions"]]
        else:
            sessions = [(raw["start"], raw["last"], raw["length"])] if raw["length"] else []
        return cls([tuple(r) for r in raw["recent"]], sessions, raw["version"])


__all__ = ["SessionState", "HISTORY_EVENT_TYPES"]
