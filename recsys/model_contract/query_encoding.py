"""The query tower's string lookups in NumPy: what ``QueryTower.encode`` computes in
TensorFlow, so that ONNX Runtime can run the tower's numeric core.

The export writes the vocabularies beside the retrieval SavedModel
(``assets.extra/query_encoding.json``); :class:`QueryEncoding` reads them back.

Guarantees: the same integers as the tower's ``StringLookup`` layers
(:mod:`recsys.model_contract.string_lookup`); history lists truncated or padded to the
tower's width (``""`` and gap 0), NaN gaps as 0; numeric inputs passed through unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from recsys.model_contract.string_lookup import Vocabulary, fixed_width, without_nan

QUERY_CORE_FILE = "query_core.onnx"  # the numeric core as an ONNX graph
QUERY_ENCODING_FILE = "query_encoding.json"


@dataclass
class QueryEncoding:
    """The vocabularies of one exported query tower."""

    history_length: int
    items: Vocabulary
    categories: Vocabulary
    strings: dict[str, Vocabulary]  # user_id, the context, the user's categorical features
    passthrough: tuple[str, ...]  # numeric inputs the core reads as they are

    @classmethod
    def read(cls, directory: Path) -> "QueryEncoding":
        """From an export's ``assets.extra`` directory."""
        doc = json.loads((Path(directory) / QUERY_ENCODING_FILE).read_text())
        return cls(doc["history_length"], Vocabulary(doc["items"]),
                   Vocabulary(doc["categories"]),
                   {n: Vocabulary(v) for n, v in doc["strings"].items()},
                   tuple(doc["passthrough"]))

    @staticmethod
    def write(directory: Path, history_length: int, items: Sequence[str],
              categories: Sequence[str], strings: Mapping[str, Sequence[str]],
              passthrough: Sequence[str]) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / QUERY_ENCODING_FILE).write_text(json.dumps({
            "history_length": history_length, "items": list(items),
            "categories": list(categories),
            "strings": {n: list(v) for n, v in strings.items()},
            "passthrough": list(passthrough)}))

    def encode(self, features: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The core's inputs for the retrieval signature's ``features`` (NumPy arrays)."""
        width = self.history_length
        encoded = {
            "history_item_ids": self.items(fixed_width(features["history_item_ids"], width,
                                                       "")),
            "history_categories": self.categories(fixed_width(features["history_categories"],
                                                              width, "")),
            "history_gaps_s": fixed_width(without_nan(features["history_gaps_s"]), width,
                                          np.float32(0)),
        }
        for name, vocabulary in self.strings.items():
            encoded[name] = vocabulary(features[name])
        for name in self.passthrough:
            encoded[name] = np.asarray(features[name])
        return encoded


__all__ = ["QueryEncoding", "QUERY_CORE_FILE", "QUERY_ENCODING_FILE"]
