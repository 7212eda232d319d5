"""Fitting the ranker on candidate lists (see :mod:`trainer.ranking.stacking`): listwise
softmax for the click head, squared error for the watch head.

Guarantee: the same lists, config and seed give the same weights (ops are deterministic once
``seed_everything`` has run, as for the two-tower model).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from recsys.model_contract.ranker_config import RankerConfig
from trainer.batches import shuffled_batches
from trainer.ranking.lists import RankerLists
from trainer.ranking.model import RankerModel, build_vocabularies
from trainer.train import seed_everything

log = logging.getLogger(__name__)


@dataclass
class RankerTraining:
    model: RankerModel
    rows: int
    losses: list[float]


def watch_targets(engagement: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Engagement target (the shape of ``labels``): 0 for negatives; the positive's label
    weight (``engagement``) scaled to [0, 1] by the 99th percentile of positive weights."""
    weight = np.nan_to_num(np.asarray(engagement, np.float32), nan=0.0)
    positive = np.asarray(labels) > 0
    scale = np.percentile(weight[positive], 99) if positive.any() else 1.0
    return np.where(positive, np.clip(weight / max(scale, 1e-6), 0, 1), 0).astype(np.float32)


def listwise_loss(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Softmax cross-entropy of each list's scores against its labels (normalised to sum 1);
    lists without a positive count nothing. logits, labels: [lists, list_size]."""
    totals = tf.reduce_sum(labels, axis=1, keepdims=True)
    target = labels / tf.maximum(totals, 1e-9)
    per_list = -tf.reduce_sum(target * tf.nn.log_softmax(logits, axis=1), axis=1)
    has_positive = tf.cast(totals[:, 0] > 0, tf.float32)
    return tf.reduce_sum(per_list * has_positive) / tf.maximum(tf.reduce_sum(has_positive), 1.0)


def encode_lists(model: RankerModel, lists: RankerLists, chunk_lists: int = 256
                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(per list, per row): :meth:`RankerModel.encode_request` of every list's request and
    :meth:`RankerModel.encode_candidates` of every row, computed once, ``chunk_lists`` lists
    at a time. The model's lookups have no dropout, so this is exactly what encoding every
    batch would give."""
    depth = lists.depth
    per_list: dict[str, list[np.ndarray]] = {}
    per_row: dict[str, list[np.ndarray]] = {}
    for start in range(0, lists.lists, chunk_lists):
        part = slice(start, min(start + chunk_lists, lists.lists))
        request = {k: tf.constant(v[part]) for k, v in lists.per_list.items()}
        rows = {k: tf.constant(v[part.start * depth:part.stop * depth])
                for k, v in lists.per_row.items()}
        for into, encoded in ((per_list, model.encode_request(request, training=False)),
                              (per_row, model.encode_candidates(rows, training=False))):
            for name, values in encoded.items():
                into.setdefault(name, []).append(np.asarray(values))
    return ({k: np.concatenate(v) for k, v in per_list.items()},
            {k: np.concatenate(v) for k, v in per_row.items()})


def train_ranker(lists: RankerLists, cfg: RankerConfig, item_ids, item_vectors,
                 init: RankerModel | None = None) -> RankerTraining:
    """Fit the ranker on labelled candidate lists (one request's candidates each). The click
    head is trained listwise (softmax over each list: only the order within a request
    matters, as in serving), the watch head by squared error on the engagement targets. Items
    are read through the given item table. With ``init``, that trained ranker is fine-tuned
    (its vocabularies and item table are kept). A batch's request inputs are repeated per
    candidate inside the step, so the host holds them once per list."""
    seed_everything(cfg.seed)
    if init is None:
        model = RankerModel(cfg, build_vocabularies(lists, cfg), item_ids, item_vectors)
    else:
        model = init
    n, list_size = lists.lists, lists.depth
    request_encoded, rows_encoded = encode_lists(model, lists)
    grouped = {k: v.reshape(n, list_size, *v.shape[1:]) for k, v in rows_encoded.items()}
    watch = watch_targets(lists.engagement, lists.labels)
    per_batch = max(1, cfg.batch_size // list_size)
    # one endless iterator: the same batches as an iterator per epoch, without letting one
    # go at every epoch's end (seconds at some epoch boundaries)
    batches = shuffled_batches(((request_encoded, grouped), lists.labels, watch), per_batch,
                               cfg.seed, repeat=True)
    steps = math.ceil(n / per_batch)
    optimizer = tf.keras.optimizers.Adam(cfg.learning_rate)

    @tf.function
    def step(features, click, engagement):
        request, candidates = features
        flat = {k: tf.reshape(v, tf.concat([[-1], tf.shape(v)[2:]], 0))
                for k, v in candidates.items()}
        flat.update({k: tf.repeat(v, list_size, axis=0) for k, v in request.items()})
        with tf.GradientTape() as tape:
            out = model.core(flat, training=True)
            shape = tf.shape(click)
            loss = listwise_loss(tf.reshape(out["click"], shape), click)
            loss += cfg.watch_weight * tf.reduce_mean(
                tf.square(tf.reshape(out["watch"], shape) - engagement))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    losses = []
    iterator = iter(batches) if steps else None
    for epoch in range(cfg.epochs):
        total = 0.0
        for _ in range(steps):
            features, click, engagement = next(iterator)
            total += float(step(features, click, engagement))
        losses.append(total / max(steps, 1))
        log.info("ranker epoch %d: loss %.4f (%d lists)", epoch + 1, losses[-1], n)
    return RankerTraining(model, n * list_size, losses)


__all__ = ["listwise_loss", "watch_targets", "train_ranker", "RankerTraining"]
