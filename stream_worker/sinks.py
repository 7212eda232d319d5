"""Where the stream worker's effects land, each idempotent:

* :class:`OnlineFeatureSink`: the Feast online store (SQLite or Redis): the rows of the
  views the push sources ``user_session_push`` and ``item_stream_push`` feed (what a push
  writes) and catalogue rows of ``item_catalogue``, each batch in one write
  (:mod:`stream_worker.online_rows`). Pushing a state again overwrites it with the same values. A
  push is stamped with the time it is written, not the newest event's time: Feast's Redis
  store skips a row that is not newer than the stored one, which would drop the effect of a
  late event (its session length or counter changes, the newest event time does not).
* :class:`LakeSink`: the lake of the embedded profile; the lake drops event ids it already
  holds and catalogue rows whose content it already holds.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd
import pyarrow as pa

from recsys.features.tables import (
    CREATED_TIMESTAMP,
    EVENT_TIMESTAMP,
    ITEM_CATALOGUE,
    ITEM_STREAM,
    USER_SESSION,
    FeatureTable,
)

TIME_COLUMNS = (EVENT_TIMESTAMP, CREATED_TIMESTAMP)


def feature_frame(table: FeatureTable, rows: Sequence[dict]) -> pd.DataFrame:
    """Rows with integer-microsecond times -> the DataFrame Feast takes (UTC datetimes; list
    features as Python lists)."""
    frame = pd.DataFrame([{name: row.get(name) for name in table.arrow_schema().names}
                          for row in rows])
    for column in TIME_COLUMNS:
        frame[column] = pd.to_datetime(frame[column].astype("int64"), unit="us", utc=True)
    return frame


class OnlineFeatureSink:
    """The stream's rows in the online store, each kind in one batch write or read
    (:class:`~stream_worker.online_rows.OnlineRows`).

    Items' categories are kept for ``category_ttl_s`` (at most ``CATEGORIES_KEPT`` items):
    a category changed by a catalogue update another worker applied reaches the session
    features within that time; one this worker applied, at once. An item without a category
    (e.g. not in the catalogue yet) is read again each time."""

    CATEGORIES_KEPT = 500_000

    def __init__(self, repo: Path, category_ttl_s: float = 60.0):
        from recsys.features.store import open_store
        from stream_worker.online_rows import OnlineRows

        self.store = open_store(repo)
        self.rows = OnlineRows(self.store)
        self.category_ttl_s = category_ttl_s
        self._categories: dict[str, tuple[str | None, float]] = {}

    def push_sessions(self, rows: Sequence[dict]) -> None:
        self._push(USER_SESSION, rows)

    def push_item_counters(self, rows: Sequence[dict]) -> None:
        self._push(ITEM_STREAM, rows)

    def write_catalogue(self, rows: Sequence[dict]) -> None:
        self.rows.write(ITEM_CATALOGUE, rows)
        now = time.monotonic()
        self._categories.update((row["item_id"], (row["item_category"], now)) for row in rows
                                if row.get("item_category") is not None)

    def _push(self, table: FeatureTable, rows: Sequence[dict]) -> None:
        """What a push of the table's push source writes, stamped with the time of writing."""
        if rows:
            now_us = time.time_ns() // 1000
            self.rows.write(table, [{**row, EVENT_TIMESTAMP: now_us, CREATED_TIMESTAMP: now_us}
                                    for row in rows])

    def session_rows(self, user_ids: Iterable[str]) -> dict[str, dict]:
        """The online store's ``user_session`` row of each user that has one (the Beam job's
        latest session state, materialized, or an earlier push): where a user the stream
        holds no state for continues from."""
        found = self.rows.read(USER_SESSION, sorted(set(user_ids)))
        return {user: row for user, row in found.items()
                if row["session_last_event_at_s"] is not None}

    def categories(self, item_ids: Iterable[str]) -> dict[str, str | None]:
        """Each item's category from the online catalogue (None when unknown), read for the
        items not read within ``category_ttl_s``."""
        now = time.monotonic()
        item_ids = set(item_ids)
        kept = {i: self._categories.get(i) for i in item_ids}
        stale = sorted(i for i, got in kept.items()
                       if got is None or now - got[1] > self.category_ttl_s)
        if stale:
            found = self.rows.read(ITEM_CATALOGUE, stale, ["item_category"])
            if len(self._categories) + len(stale) > self.CATEGORIES_KEPT:
                self._categories.clear()
            for i in stale:
                kept[i] = (found.get(i, {}).get("item_category"), now)
                if kept[i][0] is not None:
                    self._categories[i] = kept[i]
        return {i: got[0] for i, got in kept.items()}


class LakeSink:
    def __init__(self, root: Path, source: str):
        from recsys.data.lake import Lake

        self.lake, self.source = Lake(root), source

    def write_events(self, table: pa.Table) -> int:
        """Append events; returns how many were new to the lake."""
        return self.lake.write_events(table, self.source).written if len(table) else 0

    def write_items(self, table: pa.Table) -> int:
        return self.lake.write_items(table, self.source).written if len(table) else 0

    def write_exposures(self, table: pa.Table) -> int:
        return self.lake.write_exposures(table, self.source).written if len(table) else 0

    def write_decisions(self, table: pa.Table) -> int:
        return self.lake.write_decisions(table, self.source).written if len(table) else 0


__all__ = ["OnlineFeatureSink", "LakeSink", "feature_frame"]
