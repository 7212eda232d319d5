"""Why an item is recommended to a user.

Two views, as a product page and an engineer each want:

* ``because``: the user's recent items closest to the item in the two-tower embedding space
  ("because you watched ..."), with their cosine similarity;
* ``ranker_features``: the ranker's top contributing feature groups, by perturbation: each
  group is set to its missing value and the change of the click logit is the group's
  contribution (positive: the group pushes the item up). All perturbed rows go to the ranker
  in one call.

Guarantees: an item outside the catalogue is an :class:`UnknownItem` error; a user with no
history gets an empty ``because`` (and says so); contributions are sorted by absolute size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recsys.model_contract.ranker_config import ITEM_NUMERIC_FEATURES, USER_NUMERIC_FEATURES
from recsys.model_contract.ranker_inputs import RETRIEVAL_SCORE
from recsys.model_contract.retrieval_config import CONTEXT_CATEGORICAL_FEATURES
from serving.recommendations.queries import query_arrays, query_row, ranker_arrays, user_history

FEATURE_GROUPS = {
    "recent history": ("history_item_ids", "history_categories", "history_gaps_s"),
    "retrieval score": (RETRIEVAL_SCORE,),
    "item popularity": ITEM_NUMERIC_FEATURES,
    "item content": ("item_category", "item_tags", "item_age_days"),
    "user activity": USER_NUMERIC_FEATURES,
    "request context": (*CONTEXT_CATEGORICAL_FEATURES, "hour_of_day", "day_of_week"),
}


class UnknownItem(Exception):
    def __init__(self, item_id: str):
        super().__init__(f"item {item_id!r} is not in the catalogue")
        self.item_id = item_id


@dataclass
class Explanation:
    user_id: str
    item_id: str
    because: list[dict[str, Any]]
    ranker_features: list[dict[str, Any]]
    retrieval_score: float | None
    message: str


def _perturbed(arrays: dict[str, np.ndarray], specs) -> tuple[dict[str, np.ndarray], list[str]]:
    """Row 0 as is, then one row per feature group with that group set to missing."""
    by_name = {s.name: s for s in specs}
    groups = [g for g, names in FEATURE_GROUPS.items() if any(n in by_name for n in names)]
    out = {k: np.repeat(v[:1], len(groups) + 1, axis=0) for k, v in arrays.items()}
    for row, group in enumerate(groups, start=1):
        for name in FEATURE_GROUPS[group]:
            if name in by_name:
                spec = by_name[name]
                out[name][row] = spec.pad if spec.width else spec.missing
    return out, groups


def explain(recommender, user_id: str, item_id: str, now_s: int, top: int = 3) -> Explanation:
    index, specs = recommender.index, recommender.specs
    category = index.category_of(item_id)
    if item_id not in index.position:
        raise UnknownItem(item_id)
    user = recommender.features.user(user_id)
    history = user_history(user, now_s, recommender.cfg.max_history)
    vector = index.embedding_of(item_id, category)
    because, seen = [], {item_id}
    for past, past_category in zip(history.item_ids, history.categories):
        past_vector = index.embedding_of(past, past_category)
        if past_vector is not None and past not in seen:
            seen.add(past)
            because.append({"item_id": past, "category": past_category,
                            "similarity": round(float(past_vector @ vector), 4)})
    because = sorted(because, key=lambda b: -b["similarity"])[:top]
    row = query_row(user_id, user, history, {}, now_s)
    query = recommender.models.predict("retrieval", "query_embedding",
                                       query_arrays(row, specs.query), 5.0)
    score = float(np.asarray(query.outputs["embedding"])[0] @ vector)
    contributions = []
    if specs.ranker is not None:
        arrays = ranker_arrays(row, [item_id], recommender.features.items([item_id]), [score],
                               now_s, specs.ranker)
        batch, groups = _perturbed(arrays, specs.ranker)
        logits = np.asarray(recommender.models.predict("ranker", "rank", batch, 5.0)
                            .outputs["click"], dtype=np.float64)
        contributions = sorted(
            ({"feature_group": g, "contribution": round(float(logits[0] - logits[i]), 4),
              "features": [n for n in FEATURE_GROUPS[g]]}
             for i, g in enumerate(groups, start=1)),
            key=lambda c: -abs(c["contribution"]))
    if because:
        message = "because you watched " + ", ".join(b["item_id"] for b in because)
    else:
        message = "no history yet: recommended from popularity and your context"
    return Explanation(user_id, item_id, because, contributions, round(score, 4), message)


__all__ = ["explain", "Explanation", "UnknownItem", "FEATURE_GROUPS"]
