"""The ranker's string lookups in NumPy: what ``RankerModel.encode`` computes in TensorFlow,
so that a runtime without string operations (ONNX Runtime) can run the numeric core.

The export writes the vocabularies beside the SavedModel (``assets.extra/ranker_encoding.json``
and the item table's ids, ``assets.extra/ranker_item_ids.txt``); :class:`RankerEncoding` reads
them back.

Guarantees: the same integers as the model's ``StringLookup`` layers (``""`` -> 0, a value
outside the vocabulary -> 1, the vocabulary's i-th value -> i + 2); lists truncated or padded
to the model's width (``""`` and gap 0), NaN gaps as 0; numeric inputs passed through
unchanged. Lookups are dict lookups driven from C (about 70 ns a value), and a request's
rows that share one history (consecutive equal rows) are looked up once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

CORE_FILE = "rank_core.onnx"  # the numeric core as an ONNX graph (trainer.ranking.onnx_core)
ENCODING_FILE = "ranker_encoding.json"
ITEM_IDS_FILE = "ranker_item_ids.txt"
PAD, UNKNOWN = 0, 1


class _Lookup(dict):
    def __missing__(self, key) -> int:
        return UNKNOWN


class Vocabulary:
    """Strings -> int64 indices with ``StringLookup``'s numbering (mask "" and one OOV).
    Values may be ``str`` or UTF-8 ``bytes`` (as TensorFlow and gRPC give them)."""

    def __init__(self, values: Sequence[str]):
        self.values = list(values)
        if len(set(self.values)) != len(self.values):
            raise ValueError("a vocabulary holds a value twice")
        self._lookup = _Lookup({v: i + 2 for i, v in enumerate(self.values)})
        self._lookup.update({v.encode(): i + 2 for i, v in enumerate(self.values)})
        self._lookup.update({"": PAD, b"": PAD})

    def __call__(self, values: np.ndarray) -> np.ndarray:
        flat = np.asarray(values, dtype=object).ravel()
        # a dict lookup per value in C (``map``), Python only for unknown values
        found = np.fromiter(map(self._lookup.__getitem__, flat), np.int64, len(flat))
        return found.reshape(np.shape(values))


@dataclass
class RankerEncoding:
    """The vocabularies of one exported ranker."""

    history_length: int
    max_tags: int
    items: Vocabulary
    categories: Vocabulary
    tags: Vocabulary
    context: dict[str, Vocabulary]
    passthrough: tuple[str, ...]  # numeric inputs the core reads as they are

    @classmethod
    def read(cls, directory: Path) -> "RankerEncoding":
        """From an export's ``assets.extra`` directory."""
        doc = json.loads((Path(directory) / ENCODING_FILE).read_text())
        ids = (Path(directory) / ITEM_IDS_FILE).read_text().split("\n")
        return cls(doc["history_length"], doc["max_tags"], Vocabulary(ids if ids != [""]
                                                                     else []),
                   Vocabulary(doc["categories"]), Vocabulary(doc["tags"]),
                   {n: Vocabulary(v) for n, v in doc["context"].items()},
                   tuple(doc["passthrough"]))

    @staticmethod
    def write(directory: Path, history_length: int, max_tags: int, item_ids: Sequence[str],
              categories: Sequence[str], tags: Sequence[str],
              context: Mapping[str, Sequence[str]], passthrough: Sequence[str]) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if any("\n" in i for i in item_ids):
            raise ValueError("an item id holds a line break")
        (directory / ITEM_IDS_FILE).write_text("\n".join(item_ids))
        (directory / ENCODING_FILE).write_text(json.dumps({
            "history_length": history_length, "max_tags": max_tags,
            "categories": list(categories), "tags": list(tags),
            "context": {n: list(v) for n, v in context.items()},
            "passthrough": list(passthrough)}))

    def encode(self, features: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The core's inputs for the ``rank`` signature's ``features`` (as NumPy arrays)."""
        width = self.history_length
        history_ids = _fixed_width(features["history_item_ids"], width, "")
        history_categories = _fixed_width(features["history_categories"], width, "")
        gaps = np.asarray(features["history_gaps_s"], dtype=np.float32)
        gaps = _fixed_width(np.where(np.isnan(gaps), np.float32(0), gaps), width,
                            np.float32(0))
        firsts, group = _consecutive_groups(history_ids, history_categories)
        encoded = {
            "history_rows": self.items(history_ids[firsts])[group],
            "history_categories": self.categories(history_categories[firsts])[group],
            "history_gaps_s": gaps,
            "item_row": self.items(features["item_id"]),
            "item_category": self.categories(features["item_category"]),
            "item_tags": self.tags(_fixed_width(features["item_tags"], self.max_tags, "")),
        }
        for name, vocabulary in self.context.items():
            encoded[name] = vocabulary(features[name])
        for name in self.passthrough:
            encoded[name] = np.asarray(features[name])
        return encoded


def _fixed_width(values: np.ndarray, width: int, pad) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"a list input must be [rows, length], got shape {values.shape}")
    values = values[:, :width]
    if values.shape[1] == width:
        return values
    out = np.full((values.shape[0], width), pad, dtype=values.dtype)
    out[:, :values.shape[1]] = values
    return out


def _consecutive_groups(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first row of each run of equal consecutive rows, each row's run)."""
    rows = len(columns[0])
    if rows == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    differs = np.zeros(rows - 1, dtype=bool)
    for column in columns:
        change = column[1:] != column[:-1]
        differs |= change.reshape(rows - 1, int(np.prod(change.shape[1:]))).any(axis=1)
    starts = np.concatenate([[True], differs])
    return np.flatnonzero(starts), np.cumsum(starts) - 1


__all__ = ["RankerEncoding", "Vocabulary", "CORE_FILE", "ENCODING_FILE", "ITEM_IDS_FILE"]
