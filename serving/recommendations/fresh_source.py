"""Fresh items as a retrieval source: the items the stream worker embedded into the fresh-item
index for the served retrieval version (``stream_worker.fresh_items``), nearest to the
request's query embedding by dot product, on the same scale as the two-tower scores.

Guarantees: the index is re-read from Redis only when its change counter moved, at most every
``refresh_s``, one read at a time, and off the request's path: a request that finds the
snapshot due starts the read in a background thread and answers from the current snapshot
(never a mix of two); only the first request for a version (at start, after a version
change) waits for its snapshot. A Redis failure keeps the last snapshot (and is logged once
per outage), so this source never fails a request; excluded items are never returned.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Collection

import numpy as np

from serving.recommendations.rules import Candidate

log = logging.getLogger(__name__)


class FreshSource:
    def __init__(self, store, refresh_s: float = 0.5, clock=time.monotonic):
        self.store, self.refresh_s, self.clock = store, refresh_s, clock
        self._lock = threading.Lock()
        self._checked = -float("inf")
        self._version: int | None = None
        self._changes = -1
        # (version, ids, vectors, rows), replaced whole so a reader never mixes two snapshots
        self._snapshot: tuple = (None, [], np.zeros((0, 0), np.float32), {})
        self._failing = False

    def _refresh(self, version: int) -> None:
        """Make the snapshot current: read now when there is none for ``version``, else in
        the background when it is due."""
        now = self.clock()
        if version == self._version and now - self._checked < self.refresh_s:
            return
        if not self._lock.acquire(blocking=False):
            return  # a read is under way: serve the current snapshot
        if version != self._version:  # nothing to serve for this version yet: wait for it
            self._read(version, now)
            return
        self._checked = now  # due: read in the background, answer from the current one
        threading.Thread(target=self._read, args=(version, now), daemon=True,
                         name="recsys-fresh-items").start()

    def _read(self, version: int, now: float) -> None:
        """Read the index of ``version`` if it changed (the caller holds the lock; released
        here)."""
        try:
            self._checked = now
            changes = self.store.changes(version)
            if version != self._version or changes != self._changes:
                changes, ids, vectors, rows = self.store.snapshot(version)
                self._snapshot = (version, ids, vectors, rows)
                self._version, self._changes = version, changes
            self._failing = False
        except Exception as exc:  # noqa: BLE001 - keep serving the last snapshot
            if not self._failing:
                log.warning("fresh-item index unavailable, keeping the last one: %s", exc)
            self._failing = True
        finally:
            self._lock.release()

    def __len__(self) -> int:
        return len(self._snapshot[1])

    def nearest(self, query: np.ndarray, version: int, k: int,
                excluded: Collection[str] = ()) -> list[Candidate]:
        """Up to ``k`` fresh items closest to ``query`` for retrieval ``version``."""
        self._refresh(version)
        snapshot_version, ids, vectors, rows = self._snapshot
        if not ids or version != snapshot_version or vectors.shape[1] != query.shape[-1]:
            return []
        scores = vectors @ query.astype(np.float32)
        order = np.argsort(-scores, kind="stable")
        out = []
        for i in order:
            item = ids[i]
            if item in excluded:
                continue
            row = rows.get(item, {})
            out.append(Candidate(item, float(scores[i]), "fresh",
                                 str(row.get("item_category") or ""),
                                 row.get("item_created_at_s"), ["new item"]))
            if len(out) == k:
                break
        return out


__all__ = ["FreshSource"]
