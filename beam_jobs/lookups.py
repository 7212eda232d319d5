"""What every worker needs whole, loaded where the job runs instead of sent as side inputs.

Beam 2.77's DaskRunner computes a side input inside every task that reads it, from the graph
that produced it. The item lookup and the horizon would then re-read (and, for the horizon,
re-shuffle) their inputs in each task: measured here, the tasks sat blocked in those nested
computes. So they are not side inputs:

* **The horizon** is the day after the latest event. It is computed when the pipeline is built,
  from the ``timestamp`` column of the lake's event files and the event log's
  ``max(timestamp)``. It counts every row with a timestamp, so a bad row (dropped by the parse)
  can move it, which a side input over the parsed events would not.
* **The item lookup** is the latest parsed version of each item, as the pipeline's catalogue
  branch computes it (latest ``ingested_at`` over the lake and the event log; an item whose
  latest row is bad is absent). Each worker process loads it once, on first use, and keeps it
  for the run that asked for it.
"""

from __future__ import annotations

import gc
import glob
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from beam_jobs.lake_io import parquet_batches
from beam_jobs.postgres_io import EventLogSource, latest_timestamp_us, read_batches
from beam_jobs.snapshots import day_of
from recsys.data.records import BadRecord, Item, parse_item
from recsys.data.schemas import EVENTS, ITEMS

_LOADED: OrderedDict[str, dict[str, Item]] = OrderedDict()
_LOCK = threading.Lock()
_KEEP_RUNS = 2


def event_files(lake: Path) -> list[str]:
    return sorted(glob.glob(str(lake / "events" / "*" / "part-*.parquet")))


def horizon_day(lake: Path, event_log: EventLogSource | None = None) -> int:
    """The day after the latest event timestamp in the lake and the event log (0: none)."""
    latest = None
    for path in event_files(lake):
        column = pq.read_table(path, columns=["timestamp"]).column("timestamp")
        if column.null_count == len(column):
            continue
        value = pc.max(pc.cast(column, "int64")).as_py()
        latest = value if latest is None else max(latest, value)
    if event_log is not None:
        logged = latest_timestamp_us(event_log, EVENTS)
        if logged is not None:
            latest = logged if latest is None else max(latest, logged)
    return 0 if latest is None else day_of(latest) + 1


def _share(row: dict, shared: dict) -> None:
    """Replace ``row``'s category, language and tags by equal values seen before (the tags
    as a tuple, which ``parse_item`` keeps as it is)."""
    for field in ("category", "language", "tags"):
        value = row.get(field)
        if value is None:
            continue
        try:
            value = tuple(value) if isinstance(value, list) else value
            row[field] = shared.setdefault(value, value)
        except TypeError:  # not hashable: parse_item says what is wrong with it
            continue


def latest_items(lake: Path, event_log: EventLogSource | None = None) -> dict[str, Item]:
    """item_id -> the latest version of the item (by ``ingested_at``), parsed; items whose
    latest row does not parse are left out.

    Rows are parsed as they are read, and only the latest version of each item is kept (not
    its row): every worker holds the lookup, 1M items at the scale benchmark's size. Equal
    categories, languages and tag lists are shared, not copied per item."""
    items: dict[str, Item | None] = {}
    stamps: dict[str, int] = {}
    shared: dict = {}

    def consider(rows: list[dict]) -> None:
        for row in rows:
            item_id = row.get("item_id")
            stamp = row.get("ingested_at") or 0
            if item_id in stamps and stamp <= stamps[item_id]:
                continue
            stamps[item_id] = stamp
            _share(row, shared)
            try:
                items[item_id] = parse_item(row)
            except BadRecord:
                items[item_id] = None  # the pipeline's catalogue branch dead-letters it

    collecting = gc.isenabled()
    gc.disable()  # a million new objects, none in a cycle: the collector's passes are waste
    try:
        for path in sorted(glob.glob(str(lake / "items" / "part-*.parquet"))):
            for batch in parquet_batches(path):
                consider(batch.rows)
        if event_log is not None:
            for batch in read_batches(event_log, ITEMS):
                consider(batch.rows)
    finally:
        if collecting:
            gc.enable()
    for item_id in [item_id for item_id, item in items.items() if item is None]:
        del items[item_id]
    return items  # type: ignore[return-value]


@dataclass(frozen=True)
class ItemLookup:
    """A handle a DoFn carries instead of the items: ``load()`` loads them in the process where
    it runs, once per ``run`` (the last two runs' lookups are kept)."""

    lake: str
    event_log: EventLogSource | None
    run: str

    def load(self) -> dict[str, Item]:
        with _LOCK:
            items = _LOADED.get(self.run)
            if items is None:
                items = latest_items(Path(self.lake), self.event_log)
                _LOADED[self.run] = items
                while len(_LOADED) > _KEEP_RUNS:
                    _LOADED.popitem(last=False)
            return items


__all__ = ["ItemLookup", "event_files", "horizon_day", "latest_items"]
