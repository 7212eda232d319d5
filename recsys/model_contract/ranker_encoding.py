"""The ranker's string lookups in NumPy: what ``RankerModel.encode`` computes in TensorFlow,
so that a runtime without string operations (ONNX Runtime) can run the numeric core.

The export writes the vocabularies beside the SavedModel (``assets.extra/ranker_encoding.json``
and the item table's ids, ``assets.extra/ranker_item_ids.txt``); :class:`RankerEncoding` reads
them back.

Guarantees: the same integers as the model's ``StringLookup`` layers
(:mod:`recsys.model_contract.string_lookup`); lists truncated or padded to the model's width
(``""`` and gap 0), NaN gaps as 0; numeric inputs passed through unchanged; a request's rows
that share one history (consecutive equal rows) are looked up once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from recsys.model_contract.string_lookup import Vocabulary, fixed_width, without_nan

CORE_FILE = "rank_core.onnx"  # the numeric core as an ONNX graph (trainer.ranking.onnx_core)
ENCODING_FILE = "ranker_encoding.json"
ITEM_IDS_FILE = "ranker_item_ids.txt"


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
        history_ids = fixed_width(features["history_item_ids"], width, "")
        history_categories = fixed_width(features["history_categories"], width, "")
        gaps = fixed_width(without_nan(features["history_gaps_s"]), width, np.float32(0))
        firsts, group = _consecutive_groups(history_ids, history_categories)
        encoded = {
            "history_rows": self.items(history_ids[firsts])[group],
            "history_categories": self.categories(history_categories[firsts])[group],
            "history_gaps_s": gaps,
            "item_row": self.items(features["item_id"]),
            "item_category": self.categories(features["item_category"]),
            "item_tags": self.tags(fixed_width(features["item_tags"], self.max_tags, "")),
        }
        for name, vocabulary in self.context.items():
            encoded[name] = vocabulary(features[name])
        for name in self.passthrough:
            encoded[name] = np.asarray(features[name])
        return encoded


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
