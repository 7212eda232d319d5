"""The query tower: who the user is, what they engaged with recently, and the request."""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf

from recsys.model_contract.retrieval_config import (
    CONTEXT_CATEGORICAL_FEATURES,
    RetrievalModelConfig,
)
from trainer.layers import HistoryPooling, LogStandardize, LookupEmbedding, fixed_width
from trainer.layers.lookup_embedding import PAD_INDEX
from trainer.layers.sequence_encoder import CausalSequenceEncoder
from trainer.tower import Tower
from trainer.vocabularies import Vocabularies


def mlp(units: tuple[int, ...], out_dim: int, name: str) -> tf.keras.Sequential:
    """Dense ReLU layers, then a linear projection to ``out_dim`` and L2 normalisation."""
    layers = [tf.keras.layers.Dense(u, activation="relu") for u in units]
    layers.append(tf.keras.layers.Dense(out_dim))
    layers.append(tf.keras.layers.Lambda(lambda x: tf.math.l2_normalize(x, axis=-1)))
    return tf.keras.Sequential(layers, name=name)


class QueryTower(Tower):
    """User id (unknown users share a trained row; with ``cfg.user_id_embedding`` off, every
    user does), the pooled recent items and categories (and, with ``cfg.sequence_blocks``,
    their causal transformer encoding: order and ages), the time since the latest one,
    context (hour, weekday, device, country, language) and the Feast user features, through
    an MLP.

    Input: a mapping with the inputs of :func:`recsys.model_contract.feature_spec.query_inputs`.
    Output: float32 [B, embedding_dim], unit length.
    """

    def __init__(self, cfg: RetrievalModelConfig, vocab: Vocabularies, **kwargs):
        super().__init__(cfg, vocab, **kwargs)
        # without id rows: an empty vocabulary, so every user id looks up the one
        # "unknown" row (a trained constant) and the signatures keep their user_id input
        self.user = LookupEmbedding(vocab.user_ids if cfg.user_id_embedding else (),
                                    cfg.id_embedding_dim, cfg.id_dropout, name="user_id")
        self.history_items = LookupEmbedding(vocab.item_ids, cfg.id_embedding_dim,
                                             name="history_item_ids")
        self.history_categories = LookupEmbedding(vocab.categories, cfg.feature_embedding_dim,
                                                  name="history_categories")
        self.pooling = HistoryPooling(cfg.recency_decay)
        self.hour = tf.keras.layers.Embedding(24, cfg.feature_embedding_dim, name="hour_of_day")
        self.weekday = tf.keras.layers.Embedding(7, cfg.feature_embedding_dim,
                                                 name="day_of_week")
        self.strings = {name: LookupEmbedding(vocab.strings.get(name, []),
                                              cfg.feature_embedding_dim, name=name)
                        for name in (*CONTEXT_CATEGORICAL_FEATURES,
                                     *cfg.user_categorical_features)}
        self.numeric = LogStandardize({n: vocab.numeric.get(n, (0.0, 1.0))
                                       for n in cfg.user_numeric_features})
        self.head = mlp(cfg.hidden_units, cfg.embedding_dim, "query_mlp")
        self.sequence = None
        if cfg.sequence_blocks:
            self.sequence_tokens = tf.keras.layers.Dense(cfg.sequence_dim,
                                                         name="sequence_tokens")
            self.sequence = CausalSequenceEncoder(
                cfg.history_length, cfg.sequence_blocks, cfg.sequence_heads,
                2 * cfg.sequence_dim, cfg.sequence_dropout, name="sequence")

    def call(self, features: Mapping[str, tf.Tensor], training: bool | None = None):
        return self.core(self.encode(features, training), training=training)

    def passthrough_inputs(self) -> tuple[str, ...]:
        """The numeric inputs :meth:`encode` hands to :meth:`core` as they came."""
        return ("hour_of_day", "day_of_week", *self.numeric.stats)

    def string_inputs(self) -> tuple[str, ...]:
        """The single-string inputs :meth:`encode` looks up: ``user_id``, the context and
        the user's categorical features."""
        return ("user_id", *self.strings)

    def encode(self, features: Mapping[str, tf.Tensor], training: bool | None = None
               ) -> dict[str, tf.Tensor]:
        """Every string lookup, so that :meth:`core` reads only numbers: int64 indices (0
        padding / missing, 1 unknown; the user id dropped to unknown at ``training``'s
        rate), the history at its fixed width with NaN gaps as 0, the numeric inputs as
        they came."""
        width = self.cfg.history_length
        gaps = tf.cast(features["history_gaps_s"], tf.float32)
        encoded = {
            "user_id": self.user.indices(features["user_id"], training),
            "history_item_ids": self.history_items.indices(
                fixed_width(features["history_item_ids"], width, "")),
            "history_categories": self.history_categories.indices(
                fixed_width(features["history_categories"], width, "")),
            "history_gaps_s": fixed_width(tf.where(tf.math.is_nan(gaps), 0.0, gaps), width,
                                          0.0),
            **{name: layer.indices(features[name]) for name, layer in self.strings.items()},
        }
        for name in self.passthrough_inputs():
            encoded[name] = features[name]
        return encoded

    def drop_ids(self, encoded: Mapping[str, tf.Tensor], training: bool | None = None
                 ) -> dict[str, tf.Tensor]:
        """:meth:`encode`'s output made without ``training``, with the user id dropout that
        ``training`` applies: training on inputs encoded once gives the same model as
        encoding every batch."""
        return {**encoded, "user_id": self.user.drop(encoded["user_id"], training)}

    def core(self, encoded: Mapping[str, tf.Tensor], training: bool | None = None):
        """The tower on :meth:`encode`'s numbers (no string operation)."""
        ids = encoded["history_item_ids"]
        mask = ids != PAD_INDEX
        item_vectors = self.history_items.embedding(ids)
        category_vectors = self.history_categories.embedding(encoded["history_categories"])
        items = self.pooling(item_vectors, mask)
        categories = self.pooling(category_vectors, mask)
        gaps = encoded["history_gaps_s"]
        has_history = mask[:, 0]
        latest_gap = tf.where(has_history, tf.math.log1p(tf.maximum(gaps[:, 0], 0.0)) / 10.0,
                              0.0)[:, tf.newaxis]
        parts = [
            self.user.embedding(encoded["user_id"]), items, categories,
            latest_gap, tf.cast(has_history, tf.float32)[:, tf.newaxis],
            self.hour(tf.clip_by_value(encoded["hour_of_day"], 0, 23)),
            self.weekday(tf.clip_by_value(encoded["day_of_week"], 0, 6)),
            *(layer.embedding(encoded[name]) for name, layer in self.strings.items()),
        ]
        if self.cfg.user_numeric_features:
            parts.append(self.numeric(encoded))
        if self.sequence is not None:
            tokens = self.sequence_tokens(tf.concat([item_vectors, category_vectors], -1))
            parts.append(self.sequence(tokens, gaps, mask, training=training))
        return self.head(tf.concat(parts, axis=-1))
