"""Where the stream worker's effects land, each idempotent:

* :class:`OnlineFeatureSink`: the Feast online store (SQLite or Redis), through the push
  sources ``user_session_push`` and ``item_stream_push`` and, for catalogue rows, a write of
  the ``item_catalogue`` view. Pushing a state again overwrites it with the same values. A
  push is stamped with the time it is written, not the newest event's time: Feast's Redis
  store skips a row that is not newer than the stored one, which would drop the effect of a
  late event (its session length or counter changes, the newest event time does not).
* :class:`LakeSink`: the lake of the embedded profile; the lake drops event ids it already
  holds and catalogue rows whose content it already holds.
"""

from __future__ import annotations

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
    def __init__(self, repo: Path):
        from recsys.features.store import open_store

        self.store = open_store(repo)

    def push_sessions(self, rows: Sequence[dict]) -> None:
        self._push("user_session_push", USER_SESSION, rows)

    def push_item_counters(self, rows: Sequence[dict]) -> None:
        self._push("item_stream_push", ITEM_STREAM, rows)

    def write_catalogue(self, rows: Sequence[dict]) -> None:
        if rows:
            self.store.write_to_online_store(ITEM_CATALOGUE.name,
                                             feature_frame(ITEM_CATALOGUE, rows))

    def _push(self, source: str, table: FeatureTable, rows: Sequence[dict]) -> None:
        import time

        from feast.data_source import PushMode

        if rows:
            now_us = time.time_ns() // 1000
            stamped = [{**row, EVENT_TIMESTAMP: now_us, CREATED_TIMESTAMP: now_us}
                       for row in rows]
            self.store.push(source, feature_frame(table, stamped), to=PushMode.ONLINE)

    def session_rows(self, user_ids: Iterable[str]) -> dict[str, dict]:
        """The online store's ``user_session`` row of each user that has one (the Beam job's
        latest session state, materialized, or an earlier push): where a user the stream
        holds no state for continues from."""
        user_ids = sorted(set(user_ids))
        if not user_ids:
            return {}
        columns = USER_SESSION.feature_names
        found = self.store.get_online_features(
            features=[f"{USER_SESSION.name}:{c}" for c in columns],
            entity_rows=[{"user_id": u} for u in user_ids]).to_dict()
        rows = {}
        for n, user in enumerate(found["user_id"]):
            row = {c: found[c][n] for c in columns}
            if row["session_last_event_at_s"] is not None:
                rows[user] = row
        return rows

    def categories(self, item_ids: Iterable[str]) -> dict[str, str | None]:
        """Each item's category from the online catalogue (None when unknown)."""
        item_ids = sorted(set(item_ids))
        if not item_ids:
            return {}
        found = self.store.get_online_features(
            features=[f"{ITEM_CATALOGUE.name}:item_category"],
            entity_rows=[{"item_id": i} for i in item_ids]).to_dict()
        return dict(zip(found["item_id"], found["item_category"]))


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
