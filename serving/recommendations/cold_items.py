"""Embeddings for items the retrieval model has not learned yet.

A new item is embedded from its features by the item tower (its id is unknown to the model,
so the tower's shared unknown-id row and its content carry it); if the tower cannot be
reached, its category centroid stands in. Once the model has learned the item (a later
training run), its learned embedding takes over gradually: the weight of the learned vector
is ``n / (n + half_point)`` for ``n`` interactions, so a handful of clicks cannot swing it.

Guarantees: the result is unit length; it is None only when nothing at all is known (no
tower answer, no known category, no learned vector).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from recsys.model_contract.arrays import to_arrays, with_item_age
from recsys.model_contract.feature_spec import candidate_inputs


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-9)


def blend(content: np.ndarray | None, learned: np.ndarray | None, interactions: int,
          half_point: float = 20.0) -> np.ndarray | None:
    """The content-based vector moving towards the learned one as interactions grow."""
    if learned is None:
        return None if content is None else _unit(content)
    if content is None:
        return _unit(learned)
    weight = max(interactions, 0) / (max(interactions, 0) + half_point)
    return _unit(weight * _unit(learned) + (1.0 - weight) * _unit(content))


def tower_embedding(models, model_cfg, item: Mapping[str, Any], reference_us: int,
                    timeout_s: float = 1.0) -> np.ndarray:
    """The item tower's embedding of one catalogue row (``item_id``, ``item_category``,
    ``item_language``, ``item_tags``, ``item_created_at_s``)."""
    frame = with_item_age(pd.DataFrame([dict(item)]), reference_us)
    arrays = to_arrays(frame, candidate_inputs(model_cfg), "the new item")
    answer = models.predict("item_tower", "item_tower", arrays, timeout_s)
    return np.asarray(answer.outputs["embedding"][0], dtype=np.float32)


def new_item_embedding(index, models, model_cfg, item: Mapping[str, Any], reference_us: int,
                       learned: np.ndarray | None = None, interactions: int = 0
                       ) -> tuple[np.ndarray | None, str]:
    """(embedding, how it was made): ``"item tower"`` or ``"category centroid"``, blended with
    a learned vector when there is one."""
    try:
        content, origin = tower_embedding(models, model_cfg, item, reference_us), "item tower"
    except Exception:  # noqa: BLE001 - the tower is unavailable: fall back to the centroid
        content = index.centroids.get(str(item.get("item_category") or ""))
        origin = "category centroid"
    vector = blend(content, learned, interactions)
    if learned is not None:
        origin += f" blended with the learned embedding ({interactions} interactions)"
    return vector, origin


__all__ = ["blend", "tower_embedding", "new_item_embedding"]
