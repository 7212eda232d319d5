"""The catalogue in memory: each item's category, creation time and embedding (the exported
item tower's), category centroids and exact nearest-item search.

It serves what must not wait on a dependency: cold-start neighbours of a category centroid,
"because you watched" explanations, and the category and age of any candidate.

Guarantees: embeddings come from the ``item_tower`` SavedModel of one version (recorded in
``version``), computed with each item's age at that version's index reference time, so they
match the retrieval index; an item without an embedding (added after the build) falls back to
its category centroid (``embedding_of``); searches never return excluded items.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Collection, Iterable, Sequence

import numpy as np
import pandas as pd

from recsys.evaluation.candidates import top_candidates
from recsys.model_contract.arrays import to_arrays, with_item_age
from recsys.model_contract.feature_spec import candidate_inputs

log = logging.getLogger(__name__)


@dataclass
class ItemIndex:
    ids: np.ndarray              # object [N]
    categories: np.ndarray       # object [N], "" when unknown
    created_at_s: np.ndarray     # float64 [N], NaN when unknown
    vectors: np.ndarray          # float32 [N, D], unit length
    version: int

    def __post_init__(self) -> None:
        self.position = {item: i for i, item in enumerate(self.ids)}
        self.centroids: dict[str, np.ndarray] = {}
        self.category_rows: dict[str, np.ndarray] = {}
        self._category_vectors: dict[str, np.ndarray] = {}
        for category in sorted(set(self.categories) - {""}):
            rows = np.flatnonzero(self.categories == category)
            mean = self.vectors[rows].mean(axis=0)
            self.centroids[category] = mean / max(float(np.linalg.norm(mean)), 1e-9)
            self.category_rows[category] = rows

    def __len__(self) -> int:
        return len(self.ids)

    def category_of(self, item_id: str) -> str:
        row = self.position.get(item_id)
        return "" if row is None else str(self.categories[row])

    def created_at_of(self, item_id: str) -> int | None:
        row = self.position.get(item_id)
        if row is None or np.isnan(self.created_at_s[row]):
            return None
        return int(self.created_at_s[row])

    def categories_and_ages(self, item_ids: Sequence[str]
                            ) -> tuple[list[str], list[int | None]]:
        """``category_of`` and ``created_at_of`` of every id, gathered in one pass."""
        get = self.position.get
        rows = np.fromiter((get(i, -1) for i in item_ids), dtype=np.int64, count=len(item_ids))
        known = rows >= 0
        held = np.where(known, rows, 0)
        categories = np.where(known, self.categories[held], "").tolist()
        created = self.created_at_s[held]
        dated = (known & ~np.isnan(created)).tolist()
        return [str(c) for c in categories], [int(t) if d else None
                                              for t, d in zip(created.tolist(), dated)]

    def embedding_of(self, item_id: str, category: str = "") -> np.ndarray | None:
        """The item's embedding; for an item outside the index, its category's centroid."""
        row = self.position.get(item_id)
        if row is not None:
            return self.vectors[row]
        return self.centroids.get(category)

    def centroid(self, categories: Iterable[str]) -> np.ndarray | None:
        """Unit mean of the centroids of the known ``categories`` (None if none is known)."""
        known = [self.centroids[c] for c in categories if c in self.centroids]
        if not known:
            return None
        mean = np.mean(known, axis=0)
        return mean / max(float(np.linalg.norm(mean)), 1e-9)

    def nearest(self, vector: np.ndarray, k: int, exclude: Collection[str] = ()
                ) -> list[tuple[str, float]]:
        """The ``k`` items closest to ``vector`` (dot product), excluded ids left out."""
        excluded = np.asarray([self.position[i] for i in exclude if i in self.position],
                              dtype=np.int64)
        found, scores = top_candidates(vector[np.newaxis, :].astype(np.float32), self.vectors,
                                       k, [excluded])
        return [(str(self.ids[i]), float(s)) for i, s in zip(found[0], scores[0]) if i >= 0]


    def best_in_category(self, vector: np.ndarray, category: str,
                         exclude: Collection[str] = ()) -> tuple[str, float] | None:
        """The item of ``category`` closest to ``vector`` (dot product, exact) that is not in
        ``exclude``, with its score; None when the category has none left."""
        rows = self.category_rows.get(category)
        if rows is None:
            return None
        block = self._category_vectors.get(category)
        if block is None:  # each category's rows copied once, on first use (not per request)
            block = self._category_vectors[category] = np.ascontiguousarray(self.vectors[rows])
        scores = block @ vector.astype(np.float32)
        for _ in range(len(rows)):
            best = int(np.argmax(scores))
            if scores[best] == -np.inf:
                return None
            item = str(self.ids[rows[best]])
            if item not in exclude:
                return item, float(scores[best])
            scores[best] = -np.inf
        return None


def build_item_index(catalogue: pd.DataFrame, models, model_cfg, reference_us: int,
                     version: int, batch: int = 2048, timeout_s: float = 60.0) -> ItemIndex:
    """Embed every ``catalogue`` row with the ``item_tower`` model through ``models`` (a model
    client), ages at ``reference_us``. Every row is embedded by the same version, the one
    the index records (``version`` is what the caller expects; a server that answers with
    another one, or switches versions midway, is a RuntimeError: try again later)."""
    specs = candidate_inputs(model_cfg)
    arrays = to_arrays(with_item_age(catalogue, reference_us), specs, "the item catalogue")
    vectors = []
    for start in range(0, len(catalogue), batch):
        part = {k: v[start:start + batch] for k, v in arrays.items()}
        answer = models.predict("item_tower", "item_tower", part, timeout_s)
        if answer.version != version:
            raise RuntimeError(f"item_tower answered with version {answer.version} while "
                               f"version {version} was expected; the server is switching")
        vectors.append(answer.outputs["embedding"])
    matrix = (np.concatenate(vectors) if vectors else np.zeros((0, 1), np.float32))
    log.info("item index: %s items embedded by item_tower version %d", f"{len(matrix):,}",
             version)
    created = pd.to_numeric(catalogue["item_created_at_s"], errors="coerce")
    return ItemIndex(ids=catalogue["item_id"].to_numpy(object),
                     categories=catalogue["item_category"].fillna("").astype(str)
                     .to_numpy(object),
                     created_at_s=created.to_numpy(np.float64),
                     vectors=matrix.astype(np.float32), version=version)


__all__ = ["ItemIndex", "build_item_index"]
