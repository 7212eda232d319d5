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

log = logging.getLogger(__name__)


class ItemEmbedder:
    def __init__(self, model_base_path: Path):
        self.base = Path(model_base_path)
        self.version: int | None = None
        self.indexed: frozenset[str] = frozenset()
        self._servable = None
        self._specs = None
        self._reference_us = 0

    def refresh(self) -> bool:
        """Load the newest item tower if it is newer than the one loaded; True if it changed."""
        from serving.servable import Servable
        from trainer.config import RetrievalConfig
        from trainer.export import ITEM_IDS
        from trainer.feature_spec import candidate_inputs
        from trainer.manifest import read_manifest
        from trainer.versioning import versions

        found = versions(self.base / "item_tower")
        if not found or found[-1] == self.version:
            return False
        version = found[-1]
        path = self.base / "item_tower" / str(version)
        manifest = read_manifest(path)
        if manifest is None:
            return False
        servable = Servable("item_tower", version, path)
        ids_file = path / ITEM_IDS
        self.indexed = frozenset(ids_file.read_text().split("\n")) if ids_file.exists() else (
            frozenset())
        model_cfg = RetrievalConfig.from_dict({"model": manifest["model_config"]}).model
        self._specs = candidate_inputs(model_cfg)
        self._reference_us = int(pd.Timestamp(manifest["item_age_reference"]).value // 1000)
        self._servable, self.version = servable, version
        log.info("item tower version %d loaded (%s items in its index)", version,
                 f"{len(self.indexed):,}")
        return True

    def embed(self, rows: Sequence[dict]) -> np.ndarray:
        """[len(rows), D] embeddings of catalogue rows (the ``item_catalogue`` columns)."""
        from trainer.arrays import to_arrays, with_item_age

        if self._servable is None:
            raise RuntimeError(f"no item tower exported under {self.base}")
        frame = with_item_age(pd.DataFrame(list(rows)), self._reference_us)
        arrays = to_arrays(frame, self._specs, "the fresh items")
        signature = self._servable.signature("item_tower", api="grpc")
        return np.asarray(self._servable.run(signature, arrays)["embedding"], dtype=np.float32)


__all__ = ["ItemEmbedder"]
