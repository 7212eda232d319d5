"""Two-tower + ranker under the offline protocol: the ranker re-orders each user's top
``depth`` two-tower candidates (the user's train items excluded), with every feature taken at
the user's request time. Users are scored a chunk at a time (``trainer/ranking/lists.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from trainer.evaluate import two_tower_top_k
from trainer.evaluation_set import EvaluationSet
from trainer.ranking.fusion import fuse
from trainer.ranking.lists import list_chunks


def reranked(ranker, two_tower, es: EvaluationSet, catalogue: pd.DataFrame, repo: Path,
             depth: int = 200, batch: int = 8192,
             retrieved: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """int64 [users, depth]: candidate indices in the order of the fused score
    (ranker and two-tower, :mod:`trainer.ranking.fusion`). ``retrieved``: the two-tower
    model's :func:`two_tower_top_k` of ``es`` at depth >= ``depth`` when already computed."""
    import tensorflow as tf

    if retrieved is None:
        retrieved = two_tower_top_k(two_tower, es, depth)
    candidates, scores = (part[:, :depth] for part in retrieved)
    scores = np.nan_to_num(scores, nan=0.0)  # padded places, dropped below
    ids = es.candidates["item_id"].to_numpy()[np.maximum(candidates, 0)]
    per_query = max(1, batch // depth)
    logits = np.zeros(candidates.shape, np.float32)
    for part, request, rows in list_chunks(es.queries, ids, scores, catalogue, repo,
                                           ranker.cfg):
        for start in range(0, part.stop - part.start, per_query):
            lists = slice(start, start + per_query)
            inputs = {k: v[lists.start * depth:lists.stop * depth] for k, v in rows.items()}
            inputs.update({k: np.repeat(v[lists], depth, axis=0) for k, v in request.items()})
            logits[part][lists] = ranker({k: tf.constant(v) for k, v in inputs.items()},
                                         training=False)["click"].numpy().reshape(-1, depth)
    logits = fuse(logits, scores, ranker.cfg.retrieval_weight)
    logits = np.where(candidates >= 0, logits, -np.inf)
    order = np.argsort(-logits, axis=1, kind="stable")
    return np.take_along_axis(candidates, order, axis=1)


__all__ = ["reranked"]
