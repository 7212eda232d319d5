"""Two-tower + ranker under the offline protocol: the ranker re-orders each user's top
``depth`` two-tower candidates (the user's train items excluded), with every feature taken at
the user's request time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recsys.model_contract.arrays import to_arrays
from recsys.model_contract.ranker_inputs import RETRIEVAL_SCORE, ranker_inputs
from trainer.evaluate import two_tower_top_k
from trainer.evaluation_set import EvaluationSet
from trainer.ranking.fusion import fuse
from trainer.training_data import with_content


def ranker_rows(es: EvaluationSet, candidates: np.ndarray, catalogue: pd.DataFrame,
                repo: Path) -> pd.DataFrame:
    """One row per (user, candidate): the user's query columns, the candidate's content and
    the Feast features at the request time."""
    from recsys.features.training_set import join_features

    users, depth = candidates.shape
    repeated = es.queries.loc[np.repeat(np.arange(users), depth)].reset_index(drop=True)
    ids = es.candidates["item_id"].to_numpy()[candidates.ravel()]
    rows = with_content(repeated.assign(item_id=ids), catalogue)
    return join_features(repo, rows, "ranking")


def reranked(ranker, two_tower, es: EvaluationSet, catalogue: pd.DataFrame, repo: Path,
             depth: int = 200, batch: int = 8192) -> np.ndarray:
    """int64 [users, depth]: candidate indices in the order of the fused score
    (ranker and two-tower, :mod:`trainer.ranking.fusion`)."""
    candidates, scores = two_tower_top_k(two_tower, es, depth)
    scores = np.nan_to_num(scores, nan=0.0)  # padded places, dropped below
    rows = ranker_rows(es, np.maximum(candidates, 0), catalogue, repo)
    rows[RETRIEVAL_SCORE] = scores.ravel()
    arrays = to_arrays(rows, ranker_inputs(ranker.cfg), "the ranker rows")
    import tensorflow as tf

    logits = np.concatenate([
        ranker({k: tf.constant(v[i:i + batch]) for k, v in arrays.items()},
               training=False)["click"].numpy()
        for i in range(0, len(rows), batch)]).reshape(candidates.shape)
    logits = fuse(logits, scores, ranker.cfg.retrieval_weight)
    logits = np.where(candidates >= 0, logits, -np.inf)
    order = np.argsort(-logits, axis=1, kind="stable")
    return np.take_along_axis(candidates, order, axis=1)


__all__ = ["ranker_rows", "reranked"]
