"""A SASRec-style baseline (Kang & McAuley, ICDM 2018), trained with a softmax loss as in
Klenitskiy & Vasilev (RecSys 2023): item ids only, a causal transformer over each user's train
positives in time order, and a next-item cross-entropy at every position of the sequence,
over the whole candidate set or over sampled negatives shared by the batch.

Guarantees: only the train split is read (each user's positives ordered by time, ties by
example id); every train positive after a user's first is a target exactly once; a position
sees only itself and older items; a query's score is its user's encoding at their most recent
train item dotted with every candidate's embedding (the item table is shared by input and
output); the same data, config and seed give the same scores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import tensorflow as tf

from recsys.config import (
    Config,
    in_range,
    non_negative_int,
    optional,
    positive_int,
    positive_number,
    setting,
)
from trainer.evaluation_set import EvaluationSet
from trainer.layers.transformer_block import TransformerBlock
from trainer.train import seed_everything

log = logging.getLogger(__name__)
PAD = 0


@dataclass(frozen=True)
class SasrecConfig(Config):
    """Attributes:
        max_length: the most recent items a sequence holds (longer histories are cut into
            windows of this many targets for training).
        dim, blocks, heads, dropout: the transformer (its feed-forward is ``dim`` wide).
        negatives: uniform negatives shared by a batch's positions; None = full softmax.
        epochs, batch_size (windows), learning_rate, seed: Adam training.
    """

    max_length: int = setting(50, positive_int)
    dim: int = setting(64, positive_int)
    blocks: int = setting(1, positive_int)
    heads: int = setting(1, positive_int)
    dropout: float = setting(0.2, in_range(0.0, 1.0, high_open=True))
    negatives: int | None = setting(1024, optional(positive_int))
    epochs: int = setting(20, positive_int)
    batch_size: int = setting(128, positive_int)
    learning_rate: float = setting(0.003, positive_number)
    seed: int = setting(42, non_negative_int)


def user_sequences(train: pd.DataFrame, es: EvaluationSet) -> dict[str, np.ndarray]:
    """Each train user's positives as candidate index + 1 (0 is padding), oldest first."""
    position = pd.Series(np.arange(1, len(es.candidates) + 1), index=es.candidates["item_id"])
    ordered = train.sort_values(["user_id", "event_timestamp", "example_id"], kind="stable")
    tokens = position.reindex(ordered["item_id"]).to_numpy()
    known = ~np.isnan(tokens)
    users = ordered["user_id"].to_numpy()[known]
    tokens = tokens[known].astype(np.int32)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else []
    bounds = np.r_[starts, len(users)].astype(np.int64)
    return {users[a]: tokens[a:b] for a, b in zip(bounds[:-1], bounds[1:])}


def recent_first(chronological: np.ndarray, length: int) -> np.ndarray:
    """The last ``length`` tokens, most recent first, padded with 0 at the old end."""
    row = np.zeros(length, np.int32)
    tail = chronological[-length:][::-1]
    row[:len(tail)] = tail
    return row


def training_windows(sequences: dict[str, np.ndarray], length: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), int32 [windows, length], most recent first: at every position the
    target is the item that followed the input's. A sequence of n items gives n - 1 targets,
    cut from its end into windows of at most ``length``."""
    inputs, targets = [], []
    for tokens in sequences.values():
        for end in range(len(tokens), 1, -length):
            window = tokens[max(0, end - length - 1):end]
            inputs.append(recent_first(window[:-1], length))
            targets.append(recent_first(window[1:], length))
    if not inputs:
        return np.zeros((0, length), np.int32), np.zeros((0, length), np.int32)
    return np.stack(inputs), np.stack(targets)


class Sasrec(tf.keras.Model):
    """Item and position embeddings -> causal transformer blocks; ``items`` is the shared
    item table (row 0 = padding)."""

    def __init__(self, items: int, cfg: SasrecConfig):
        super().__init__()
        self.cfg = cfg
        self.items = tf.keras.layers.Embedding(items + 1, cfg.dim)
        self.positions = tf.keras.layers.Embedding(cfg.max_length, cfg.dim)
        self.drop = tf.keras.layers.Dropout(cfg.dropout)
        self.blocks = [TransformerBlock(cfg.heads, cfg.dim, cfg.dropout, causal=True)
                       for _ in range(cfg.blocks)]

    def call(self, tokens: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """tokens int32 [B, T] most recent first -> float32 [B, T, dim]."""
        mask = tokens != PAD
        x = self.items(tokens) * (self.cfg.dim ** 0.5)
        x = x + self.positions(tf.range(tf.shape(tokens)[1]))[tf.newaxis]
        x = self.drop(x, training=training) * tf.cast(mask, tf.float32)[:, :, tf.newaxis]
        for block in self.blocks:
            x = block(x, mask, training=training)
        return x


def _loss(model: Sasrec, inputs, targets, negatives, training: bool = True) -> tf.Tensor:
    """Mean cross-entropy of every non-padded position's target, against every item (no
    ``negatives``) or against ``negatives`` (int32 [S]; a negative equal to the target is
    masked out)."""
    hidden = model(inputs, training=training)
    mask = targets != PAD
    hidden, targets = tf.boolean_mask(hidden, mask), tf.boolean_mask(targets, mask)
    table = model.items.embeddings
    if negatives is None:
        logits = tf.matmul(hidden, table[1:], transpose_b=True)
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets - 1,
                                                                             logits))
    positive = tf.reduce_sum(hidden * tf.gather(table, targets), axis=1, keepdims=True)
    sampled = tf.matmul(hidden, tf.gather(table, negatives), transpose_b=True)
    sampled = tf.where(targets[:, tf.newaxis] == negatives[tf.newaxis], -1e9, sampled)
    logits = tf.concat([positive, sampled], axis=1)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        tf.zeros_like(targets), logits))


def train_sasrec(sequences: dict[str, np.ndarray], items: int, cfg: SasrecConfig
                 ) -> tuple[Sasrec, list[float]]:
    """Fit on every sequence's windows; returns the model and each epoch's mean loss."""
    seed_everything(cfg.seed)
    inputs, targets = training_windows(sequences, cfg.max_length)
    model = Sasrec(items, cfg)
    optimizer = tf.keras.optimizers.Adam(cfg.learning_rate)
    rng = np.random.default_rng(cfg.seed)

    @tf.function(reduce_retracing=True)
    def step(batch_inputs, batch_targets, negatives):
        with tf.GradientTape() as tape:
            loss = _loss(model, batch_inputs, batch_targets, negatives)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    losses: list[float] = []
    for epoch in range(cfg.epochs):
        order = rng.permutation(len(inputs))
        total, batches = 0.0, 0
        for start in range(0, len(order), cfg.batch_size):
            rows = order[start:start + cfg.batch_size]
            negatives = (None if cfg.negatives is None else
                         tf.constant(rng.integers(1, items + 1, cfg.negatives), tf.int32))
            total += float(step(tf.constant(inputs[rows]), tf.constant(targets[rows]),
                                negatives))
            batches += 1
        losses.append(total / max(batches, 1))
        log.info("SASRec epoch %d/%d: loss %.4f (%s windows)", epoch + 1, cfg.epochs,
                 losses[-1], f"{len(inputs):,}")
    return model, losses


def sasrec_scores(train: pd.DataFrame, es: EvaluationSet, cfg: SasrecConfig = SasrecConfig()
                  ) -> np.ndarray:
    """float32 [queries, candidates]: each query user's encoding at their most recent train
    positive dotted with every candidate; 0 for a user without train positives."""
    sequences = user_sequences(train, es)
    model, _ = train_sasrec(sequences, len(es.candidates), cfg)
    empty = np.zeros(0, np.int32)
    tokens = np.stack([recent_first(sequences.get(user, empty), cfg.max_length)
                       for user in es.queries["user_id"]]) if len(es.queries) else \
        np.zeros((0, cfg.max_length), np.int32)
    scores = np.zeros((len(tokens), len(es.candidates)), np.float32)
    table = model.items.embeddings[1:]
    for start in range(0, len(tokens), 1024):
        part = tokens[start:start + 1024]
        latest = model(tf.constant(part), training=False)[:, 0]
        scores[start:start + len(part)] = tf.matmul(latest, table, transpose_b=True).numpy()
    return scores


__all__ = ["SasrecConfig", "Sasrec", "sasrec_scores", "train_sasrec", "training_windows",
           "user_sequences", "recent_first"]
