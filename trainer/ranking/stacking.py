"""The ranker's training lists, built the way requests are served.

A ranker trained on candidates and scores of a retrieval model that has already seen the
labels learns to trust those scores far too much (in-sample scores). So each user's train
interactions are split by time: the earlier part (``fit``) trains a *stacking* two-tower
model; at the start of the later part (``held``) that model retrieves the user's top
candidates, exactly as at serving time, and each candidate is labelled by whether the user
engaged with it in ``held`` (logged-style negatives: retrieved, then not taken).

Guarantees: only the train split is read; the split keeps each user's order (ties in file
order), with ``max(1, floor(fraction * n))`` of a user's n interactions held; every feature of
a list is the one Feast serves at that list's request time (point in time); the same data
and model give the same lists.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from recsys.model_contract.ranker_config import RankerConfig
from trainer.evaluate import two_tower_top_k
from trainer.evaluation_set import build_evaluation_set
from trainer.ranking.lists import RankerLists, build_lists
from trainer.training_data import RetrievalData

log = logging.getLogger(__name__)


def split_by_time(train: pd.DataFrame, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fit, held): per user, the latest ``max(1, floor(fraction * n))`` interactions held."""
    ordered = train.sort_values(["user_id", "event_timestamp", "example_id"], kind="stable")
    sizes = ordered.groupby("user_id")["item_id"].transform("size").to_numpy()
    position = ordered.groupby("user_id").cumcount().to_numpy()
    held = position >= sizes - np.maximum(1, np.floor(fraction * sizes).astype(np.int64))

    def by_time(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.sort_values(["event_timestamp", "example_id"],
                                 kind="stable").reset_index(drop=True)
    return by_time(ordered[~held]), by_time(ordered[held])


def candidate_lists(two_tower, data: RetrievalData, repo, cfg: RankerConfig) -> RankerLists:
    """One list of ``cfg.candidates`` rows per user with held interactions: the stacking
    model's top candidates at the user's first held interaction (their fit items excluded),
    labelled 1 if engaged with in held (``engagement``: that engagement's weight), with the
    retrieval score and the Feast features at that time. ``data.train`` is the fit part,
    ``data.test`` the held part. With ``cfg.max_lists``, the lists of that many of those
    users, drawn with ``cfg.seed``."""
    es = build_evaluation_set(data)
    if cfg.max_lists is not None and len(es.queries) > cfg.max_lists:
        drawn = np.random.default_rng(cfg.seed).choice(len(es.queries), cfg.max_lists,
                                                      replace=False)
        log.info("ranker lists: %s of %s users drawn (max_lists)", f"{cfg.max_lists:,}",
                 f"{len(es.queries):,}")
        es = es.select(np.sort(drawn))
    found, scores = two_tower_top_k(two_tower, es, cfg.candidates)
    ids = es.candidates["item_id"].to_numpy()
    weights = data.test.groupby(["user_id", "item_id"])["label_weight"].max()
    labels = np.zeros(found.shape, np.float32)
    engagement = np.zeros(found.shape, np.float32)
    for user_row, user in enumerate(es.queries["user_id"]):
        relevant = np.isin(found[user_row], es.relevant[user_row]) & (found[user_row] >= 0)
        labels[user_row] = relevant
        for col in np.flatnonzero(relevant):
            engagement[user_row, col] = weights.get((user, ids[found[user_row, col]]), 1.0)
    return build_lists(es.queries, ids[np.maximum(found, 0)], scores, labels, engagement,
                       data.catalogue, repo, cfg)


__all__ = ["split_by_time", "candidate_lists"]
