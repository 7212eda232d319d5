"""Precomputed popular lists: the last tiers of the recommendation fallback ladder (segment
popular, then global popular) and the source of trending and cold-start candidates.

Guarantees:

* Only ``train`` examples are read: ``test`` rows never change a list, a score, a category or
  ``as_of_s`` (the epoch seconds, floored, of the latest train event).
* An event weighs ``0.5 ** (age_days / half_life_days)``, its age taken from the latest train
  event; an item's score is the sum of its events' weights. A list counts only the events at
  most ``window_days`` old; a list whose window holds none of its events counts all of its
  train events instead.
* A segment (a non-empty ``country``, ``language`` or ``device`` value) gets a list only when
  the events it counts number at least ``min_segment_events``.
* Lists are best first, at most ``per_list`` long, ties broken by item id ascending, so the same
  examples give the same lists whatever their row order. An item's category is that of its
  latest train example (by time, then example id); ``""`` when unknown.
* ``load`` accepts only what ``save`` writes (``"format": "recsys.popular/v1"``); anything else
  is a ``SourceError`` naming the file and the problem. Bad parameters are ``ConfigError``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from recsys.config import finite_positive_number, positive_int
from recsys.errors import ConfigError, SourceError

SEGMENT_FIELDS = ("country", "language", "device")
FORMAT = "recsys.popular/v1"
REQUIRED_COLUMNS = ("example_id", "item_id", "event_timestamp", "split", "item_category",
                    *SEGMENT_FIELDS)
_FIELDS = ("global_items", "segments", "as_of_s", "half_life_days", "window_days")
_ITEM_FIELDS = ("item_id", "score", "category")
_REBUILD = "rebuild it with build_popular_lists(...).save(path)"


@dataclass(frozen=True)
class PopularItem:
    item_id: str
    score: float
    category: str  # "" when unknown


@dataclass
class PopularLists:
    """The global list and the per-segment lists (field -> value -> list), all best first."""

    global_items: list[PopularItem]
    segments: dict[str, dict[str, list[PopularItem]]]
    as_of_s: int
    half_life_days: float
    window_days: float

    def top(self, k: int, exclude: Collection[str] = ()) -> list[PopularItem]:
        """The ``k`` best global items whose id is not in ``exclude``."""
        return _take(self.global_items, _count(k), set(exclude))

    def for_segment(self, context: Mapping[str, str | None], k: int,
                    exclude: Collection[str] = ()) -> tuple[list[PopularItem], str]:
        """(items, label): the request's segment lists merged by summed normalised score (a
        list's scores divided by its best one), filled from the global list up to ``k``. Merged
        items carry their summed score, fill items their global one; the label names the
        segments used ("country=DE,device=tv") or is "global"."""
        k, excluded = _count(k), set(exclude)
        merged_items, label = self._merged(context)
        result = [PopularItem(*entry) for entry in
                  islice((e for e in merged_items if e[0] not in excluded), k)]
        if len(result) < k:
            result += _take(self.global_items, k - len(result),
                            excluded | {item.item_id for item in result})
        return result, label

    def segment_label(self, context: Mapping[str, str | None]) -> str:
        """The segments ``for_segment`` would use for ``context`` ("global" if none)."""
        return self._merged(context)[1]

    def _merged(self, context: Mapping[str, str | None]
                ) -> tuple[tuple[tuple[str, float, str], ...], str]:
        """The merged segment list of ``context`` as (item_id, score, category) tuples
        (computed once per segment combination). Plain tuples of strings and numbers: the
        garbage collector stops tracking them, so the service's merged lists (tens of
        thousands of items) add nothing to its full collections, as objects per item did."""
        key = tuple(context.get(field) for field in SEGMENT_FIELDS)
        cache = self.__dict__.setdefault("_merged_cache", {})
        if key in cache:
            return cache[key]
        merged: dict[str, float] = {}
        categories: dict[str, str] = {}
        used = []
        for field in SEGMENT_FIELDS:
            value = context.get(field)
            items = self.segments.get(field, {}).get(value) if isinstance(value, str) else None
            if not value or not items:
                continue
            used.append(f"{field}={value}")
            best = max(item.score for item in items)
            for item in items:
                share = item.score / best if best > 0 else 0.0
                merged[item.item_id] = merged.get(item.item_id, 0.0) + share
                categories.setdefault(item.item_id, item.category)
        ranked = sorted(merged.items(), key=lambda pair: (-pair[1], pair[0]))
        cache[key] = (tuple((i, s, categories[i]) for i, s in ranked),
                      ",".join(used) or "global")
        return cache[key]

    def save(self, path: str | os.PathLike) -> None:
        """Write the lists as JSON (atomically: readers see the old file or the new one)."""
        path = Path(path)
        data = {"format": FORMAT, **asdict(self)}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, allow_nan=False), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PopularLists:
        path = Path(path)
        if not path.is_file():
            raise SourceError(f"{path}: popular lists not found; {_REBUILD}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise SourceError(f"{path}: not a valid JSON file ({error}); {_REBUILD}") from None
        got = data.get("format") if isinstance(data, dict) else None
        if got != FORMAT:
            raise SourceError(f"{path}: format is {got!r}, expected {FORMAT!r}; {_REBUILD}")
        _require(data, _FIELDS, "", path)
        try:
            segments = {str(f): {str(v): _parse(items, f"segments.{f}.{v}", path)
                                 for v, items in values.items()}
                        for f, values in data["segments"].items()}
            return cls(_parse(data["global_items"], "global_items", path), segments,
                       int(data["as_of_s"]), float(data["half_life_days"]),
                       float(data["window_days"]))
        except (AttributeError, TypeError, ValueError) as error:
            raise SourceError(f"{path}: malformed popular lists ({error}); {_REBUILD}") from None


def build_popular_lists(examples: pd.DataFrame, per_list: int = 500, half_life_days: float = 7.0,
                        window_days: float = 30.0, min_segment_events: int = 50) -> PopularLists:
    """The popular lists of the ``train`` rows of ``examples``; see the module docstring."""
    positive_int("per_list", per_list)
    positive_int("min_segment_events", min_segment_events)
    finite_positive_number("half_life_days", half_life_days)
    finite_positive_number("window_days", window_days)
    missing = [c for c in REQUIRED_COLUMNS if c not in examples.columns]
    if missing:
        raise SourceError(f"the training examples have no column(s) {', '.join(missing)}: "
                          "rebuild them with `recsys features build`")
    train = examples[examples["split"] == "train"]
    if train.empty:
        raise SourceError("the training examples have no train rows: nothing to rank; "
                          "rebuild them with `recsys features build`")
    times = pd.to_datetime(train["event_timestamp"], utc=True)
    latest = times.max()
    age = ((latest - times) / pd.Timedelta(days=1)).to_numpy()
    item_ids = train["item_id"].astype(str)
    events = pd.DataFrame({"item_id": item_ids.to_numpy(), "age": age,
                           "weight": 0.5 ** (age / half_life_days),
                           "in_window": age <= window_days,
                           **{f: train[f].to_numpy() for f in SEGMENT_FIELDS}})
    events = events.sort_values(["item_id", "age"], kind="stable")  # same sums, same order
    last = (train[["example_id", "item_category"]].assign(_t=times, _id=item_ids)
            .sort_values(["_t", "example_id"], kind="stable").drop_duplicates("_id", keep="last"))
    categories = {i: c if isinstance(c, str) else "" for i, c in
                  zip(last["_id"], last["item_category"])}

    def ranked(rows: pd.DataFrame, minimum: int) -> list[PopularItem] | None:
        window = rows[rows["in_window"]]
        rows = window if len(window) else rows
        if len(rows) < minimum:
            return None
        sums = rows.groupby("item_id", sort=True)["weight"].sum().reset_index()
        sums = sums.sort_values(["weight", "item_id"], ascending=[False, True], kind="stable")
        return [PopularItem(i, float(s), categories[i])
                for i, s in zip(sums["item_id"][:per_list], sums["weight"][:per_list])]

    segments: dict[str, dict[str, list[PopularItem]]] = {}
    for field in SEGMENT_FIELDS:
        for value, rows in events.groupby(field, sort=True, dropna=True):
            items = ranked(rows, min_segment_events) if isinstance(value, str) and value else None
            if items:
                segments.setdefault(field, {})[value] = items
    return PopularLists(ranked(events, 1) or [], segments, math.floor(latest.timestamp()),
                        float(half_life_days), float(window_days))


def load_training_examples(repo: Path) -> pd.DataFrame:
    """The Beam-built training examples of the profile repository ``repo`` (all splits)."""
    path = Path(repo) / "data" / "training_examples"
    if not path.exists():
        raise SourceError(f"{path} not found; run `recsys features build` first")
    return pq.read_table(path).to_pandas()


def _count(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ConfigError(f"k must be an integer >= 0, got {k!r}")
    return k


def _take(items: list[PopularItem], k: int, exclude: set[str]) -> list[PopularItem]:
    return list(islice((item for item in items if item.item_id not in exclude), k))


def _require(data: dict, fields: tuple[str, ...], where: str, path: Path) -> None:
    missing = [f for f in fields if f not in data]
    if missing:
        raise SourceError(f"{path}: missing field(s) {', '.join(missing)}{where}; {_REBUILD}")


def _parse(raw: list, where: str, path: Path) -> list[PopularItem]:
    items = []
    for n, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise SourceError(f"{path}: {where}[{n}] is not an object; {_REBUILD}")
        _require(entry, _ITEM_FIELDS, f" in {where}[{n}]", path)
        items.append(PopularItem(str(entry["item_id"]), float(entry["score"]),
                                 str(entry["category"])))
    return items


__all__ = ["SEGMENT_FIELDS", "FORMAT", "PopularItem", "PopularLists", "build_popular_lists",
           "load_training_examples"]
