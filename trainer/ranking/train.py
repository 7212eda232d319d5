"""Training the ranker: rows from the two-tower model's candidates, Feast features point in
time, and a multi-task fit.

Guarantees: only the train split is used; every feature of a row is the value at that row's
example time (Feast point-in-time join, ``ranking`` service); the same data, configs and seed
give the same rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from trainer.arrays import to_arrays, with_item_age
from trainer.evaluate import embed
from trainer.feature_spec import candidate_inputs, query_inputs
from trainer.ranking.candidates import top_candidates
from trainer.ranking.config import RankerConfig
from trainer.ranking.inputs import RETRIEVAL_SCORE, ranker_inputs
from trainer.ranking.model import RankerModel, build_vocabularies
from trainer.ranking.samples import NegativeSampling, sample_rows
from trainer.training_data import RetrievalData, timestamps_us, with_content

log = logging.getLogger(__name__)
RETRIEVED_PER_EXAMPLE = 50


@dataclass
class RankerTraining:
    model: RankerModel
    rows: int
    losses: list[float]


def candidate_items(data: RetrievalData) -> pd.DataFrame:
    """Catalogue rows of the items that occur in the train split, sorted by id, with their
    train counts."""
    counts = data.train["item_id"].value_counts()
    rows = pd.DataFrame({"item_id": sorted(counts.index)})
    rows = rows.merge(data.catalogue, on="item_id", how="left")
    return rows.assign(train_count=counts.reindex(rows["item_id"]).to_numpy())


def training_rows(data: RetrievalData, two_tower, repo: Path,
                  sampling: NegativeSampling = NegativeSampling()) -> pd.DataFrame:
    """Positives and negatives of the train split with content and Feast features."""
    from recsys.features.training_set import join_features

    items = candidate_items(data)
    reference = int(timestamps_us(data.train).max())
    item_emb = embed(two_tower.candidate_tower,
                     to_arrays(with_item_age(items, reference), candidate_inputs(two_tower.cfg)))
    queries = embed(two_tower.query_tower,
                    to_arrays(data.train, query_inputs(two_tower.cfg), "the train examples"))
    found, _ = top_candidates(queries, item_emb, RETRIEVED_PER_EXAMPLE)
    ids = items["item_id"].to_numpy()
    retrieved = np.where(found >= 0, ids[np.maximum(found, 0)], "")
    rows = sample_rows(data.train, retrieved, ids, items["train_count"].to_numpy(), sampling)
    position = pd.Series(np.arange(len(ids)), index=ids)
    item_rows = position.reindex(rows["item_id"]).to_numpy()
    example_rows = rows["example_index"].to_numpy()
    rows[RETRIEVAL_SCORE] = np.einsum("ij,ij->i", queries[example_rows],
                                      item_emb[item_rows]).astype(np.float32)
    log.info("ranker rows: %s (%s positives)", f"{len(rows):,}", f"{int(rows.label.sum()):,}")
    rows = with_content(rows, data.catalogue)
    return join_features(repo, rows, "ranking")


def watch_targets(rows: pd.DataFrame) -> np.ndarray:
    """Engagement target: 0 for negatives; the positive's label weight scaled to [0, 1] by the
    99th percentile of positive weights."""
    weight = pd.to_numeric(rows["label_weight"], errors="coerce").fillna(0).to_numpy(np.float32)
    positive = rows["label"].to_numpy() > 0
    scale = np.percentile(weight[positive], 99) if positive.any() else 1.0
    return np.where(positive, np.clip(weight / max(scale, 1e-6), 0, 1), 0).astype(np.float32)


def train_ranker(rows: pd.DataFrame, cfg: RankerConfig) -> RankerTraining:
    tf.keras.utils.set_random_seed(cfg.seed)
    arrays = to_arrays(rows, ranker_inputs(cfg), "the ranker rows")
    vocab = build_vocabularies(arrays, cfg)
    model = RankerModel(cfg, vocab)
    model.compile(optimizer=tf.keras.optimizers.Adam(cfg.learning_rate),
                  loss={"click": tf.keras.losses.BinaryCrossentropy(from_logits=True),
                        "watch": tf.keras.losses.MeanSquaredError()},
                  loss_weights={"click": 1.0, "watch": cfg.watch_weight})
    labels = {"click": rows["label"].to_numpy(np.float32), "watch": watch_targets(rows)}
    dataset = (tf.data.Dataset.from_tensor_slices((arrays, labels))
               .shuffle(len(rows), seed=cfg.seed).batch(cfg.batch_size)
               .prefetch(tf.data.AUTOTUNE))
    history = model.fit(dataset, epochs=cfg.epochs, verbose=2)
    return RankerTraining(model, len(rows), [float(x) for x in history.history["loss"]])


__all__ = ["candidate_items", "training_rows", "watch_targets", "train_ranker",
           "RankerTraining"]
