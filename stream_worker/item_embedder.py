"""Embedding catalogue rows with the item tower of the newest exported version, for the
fresh-item index.

Guarantees: :meth:`ItemEmbedder.refresh` switches to a newer version only once its item
tower has loaded; embeddings use that version's item-age reference, as its index did;
:meth:`indexed` is the set of items that version's retrieval index holds (its
``assets.extra/item_ids.txt``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

import recsys  # noqa: F401  (Keras 2 before TensorFlow)

log = logging.getLogger(__name__)


class ItemEmbedder:
    def __init__(self, model_base_path: Path):
        self.base = Path(model_base_path)
        self.version: int | None = None
        self.indexed: frozenset[str] = frozenset()
        self._model = self._tower = None
        self._specs = None
        self._reference_us = 0

    def refresh(self) -> bool:
        """Load the newest item tower if it is newer than the one loaded; True if it changed."""
        from recsys.model_contract.feature_spec import candidate_inputs
        from recsys.model_contract.manifest import ITEM_IDS, read_manifest
        from recsys.model_contract.retrieval_config import model_config_of
        from recsys.model_contract.versioning import versions

        found = versions(self.base / "item_tower")
        if not found or found[-1] == self.version:
            return False
        version = found[-1]
        path = self.base / "item_tower" / str(version)
        manifest = read_manifest(path)
        if manifest is None:
            return False
        model, tower = _load_signature(path, "item_tower")
        ids_file = path / ITEM_IDS
        self.indexed = frozenset(ids_file.read_text().split("\n")) if ids_file.exists() else (
            frozenset())
        self._specs = candidate_inputs(model_config_of(manifest))
        self._reference_us = int(pd.Timestamp(manifest["item_age_reference"]).value // 1000)
        self._model, self._tower, self.version = model, tower, version
        log.info("item tower version %d loaded (%s items in its index)", version,
                 f"{len(self.indexed):,}")
        return True

    def embed(self, rows: Sequence[dict]) -> np.ndarray:
        """[len(rows), D] embeddings of catalogue rows (the ``item_catalogue`` columns)."""
        import tensorflow as tf

        from recsys.model_contract.arrays import to_arrays, with_item_age

        if self._tower is None:
            raise RuntimeError(f"no item tower exported under {self.base}")
        frame = with_item_age(pd.DataFrame(list(rows)), self._reference_us)
        arrays = to_arrays(frame, self._specs, "the fresh items")
        feed = {s.name: tf.constant(arrays[s.name], dtype=getattr(tf, s.dtype))
                for s in self._specs}
        return np.asarray(self._tower(**feed)["embedding"].numpy(), dtype=np.float32)


def _load_signature(path: Path, name: str):
    """(the loaded SavedModel at ``path``, its signature ``name``), loaded with
    tf.saved_model.load as the model server loads it; keep the model while the function is
    used."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    return loaded, loaded.signatures[name]


__all__ = ["ItemEmbedder"]
