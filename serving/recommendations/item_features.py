"""The item side of the ranker's inputs, held in memory as columns: every catalogue item's
online features (Feast item views), encoded once, so a request gathers its candidates' rows
with one NumPy take instead of reading and encoding a few hundred feature rows.

Guarantees:

* Rows are encoded by :func:`recsys.model_contract.arrays.records_to_arrays` with the ranker's
  own specs, so a gathered row equals what encoding that item's online row per request gives
  (a test holds them equal).
* At start the table is filled in bulk from the offline store's latest value of every item
  (what the online store was materialized from: seconds for a million items where reading
  the online store item by item takes minutes), then re-read from the online store every
  ``refresh_s`` by one background thread, chunk by chunk, pausing between chunks so that a
  sweep never takes more than about a tenth of a core; each chunk is written over its own
  rows, so an item's values are at most one sweep (plus ``refresh_s``) old. A failing store
  keeps the last values (logged once per outage); it never fails a request.
* Items the table does not hold (added to the catalogue after start) are reported by
  ``rows`` as -1: the caller reads them from the store.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Iterable, Sequence

import numpy as np

from recsys.features.tables import ITEM_CATALOGUE, ITEM_FEATURES
from recsys.model_contract.arrays import records_to_arrays
from recsys.model_contract.feature_spec import InputSpec

log = logging.getLogger(__name__)
ITEM_VIEW_FEATURES = frozenset((*ITEM_FEATURES.feature_names, *ITEM_CATALOGUE.feature_names))
COMPUTED = frozenset({"item_id", "item_age_days"})  # the id, and the age at request time
CREATED_AT = "item_created_at_s"


def stored_item_specs(specs: Iterable[InputSpec]) -> tuple[InputSpec, ...]:
    """The ranker inputs read from the item views (not the id, not the request-time age)."""
    return tuple(s for s in specs if s.name in ITEM_VIEW_FEATURES and s.name not in COMPUTED)


def created_at_seconds(values: Sequence) -> np.ndarray:
    """Creation times as float64 seconds, NaN where unknown (the ranker's age reads them)."""
    return np.asarray([np.nan if v is None or v != v else float(v) for v in values],
                      dtype=np.float64)


def encode_item_rows(features: dict[str, list], specs: Sequence[InputSpec]
                     ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Columns of one store read (``OnlineFeatures.items``) -> the encoded ``specs`` columns
    and the creation times."""
    n = len(next(iter(features.values()))) if features else 0
    records = [{name: values[i] for name, values in features.items()} for i in range(n)]
    return (records_to_arrays(records, specs),
            created_at_seconds(features.get(CREATED_AT, [None] * n)))


class ItemFeatureTable:
    """Encoded item-side ranker inputs of ``ids``, one row per item."""

    def __init__(self, ids: Sequence[str], specs: Sequence[InputSpec]):
        self.ids = list(ids)
        self.specs = tuple(specs)
        self.position = {item: i for i, item in enumerate(self.ids)}
        n = len(self.ids)
        self.columns = {s.name: np.full((n,) if s.width is None else (n, s.width),
                                        s.missing if s.width is None else s.pad,
                                        dtype=s.numpy_dtype) for s in self.specs}
        self.created_at_s = np.full(n, np.nan, dtype=np.float64)
        self.loaded = np.zeros(n, dtype=bool)  # rows read from the store at least once

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, item_ids: Sequence[str]) -> np.ndarray:
        """Row of each id, -1 for an id the table does not hold (or has never read)."""
        get = self.position.get
        rows = np.fromiter((get(i, -1) for i in item_ids), dtype=np.int64, count=len(item_ids))
        if len(rows):
            unread = rows >= 0
            unread[unread] = ~self.loaded[rows[unread]]
            rows[unread] = -1
        return rows

    def write(self, rows: np.ndarray | slice, features: dict[str, list]) -> None:
        """Store feature columns (one store read, in the order of ``rows``) at ``rows``."""
        columns, created = encode_item_rows(features, self.specs)
        for name, values in columns.items():
            self.columns[name][rows] = values
        self.created_at_s[rows] = created
        self.loaded[rows] = True


class ItemTableLoader:
    """Fills an :class:`ItemFeatureTable` from ``features`` (an ``OnlineFeatures``), once or
    continuously in a daemon thread."""

    def __init__(self, table: ItemFeatureTable, features, chunk: int = 2000,
                 refresh_s: float = 300.0, duty: float = 0.1):
        self.table, self.features, self.chunk = table, features, chunk
        self.refresh_s, self.duty = refresh_s, duty
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def sweep(self, pause: bool = False) -> int:
        """Read every row once; returns the rows read (a failed chunk is skipped)."""
        read, started = 0, time.perf_counter()
        for start in range(0, len(self.table), self.chunk):
            if self._stop.is_set():
                break
            began = time.perf_counter()
            ids = self.table.ids[start:start + self.chunk]
            try:
                self.table.write(slice(start, start + len(ids)), self.features.items(ids))
                read += len(ids)
                self._failing = False
            except Exception as exc:  # noqa: BLE001 - keep the values already held
                if not self._failing:
                    log.warning("item feature table: online store read failed, keeping the "
                                "last values: %s", exc)
                self._failing = True
            if pause:  # leave the cores to requests: work at most `duty` of the time
                self._stop.wait((time.perf_counter() - began) * (1 - self.duty) / self.duty)
        log.debug("item feature table: %s rows in %.1fs", f"{read:,}",
                  time.perf_counter() - started)
        return read

    def seed(self, ids: Sequence[str], features: dict[str, list]) -> int:
        """Fill the rows of ``ids`` from columns read in bulk (``OnlineFeatures.latest_items``:
        the offline values the online store was materialized from), before the first sweep
        brings the online store's own; returns the rows written."""
        rows = np.asarray([self.table.position.get(i, -1) for i in ids], dtype=np.int64)
        keep = np.flatnonzero(rows >= 0)
        for start in range(0, len(keep), 50_000):
            part = keep[start:start + 50_000]
            self.table.write(rows[part], {name: [values[i] for i in part]
                                          for name, values in features.items()})
        return len(keep)

    def start(self) -> "ItemTableLoader":
        def run() -> None:
            while not self._stop.wait(self.refresh_s):
                self.sweep(pause=True)

        self._thread = threading.Thread(target=run, name="recsys-item-table", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


__all__ = ["ItemFeatureTable", "ItemTableLoader", "stored_item_specs", "encode_item_rows",
           "created_at_seconds", "ITEM_VIEW_FEATURES"]
