"""The candidate tower: an item from its id and its content, so unseen items embed too."""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf

from recsys.model_contract.retrieval_config import RetrievalModelConfig
from trainer.layers import HistoryPooling, LookupEmbedding, fixed_width
from trainer.layers.lookup_embedding import PAD_INDEX
from trainer.query_tower import mlp
from trainer.tower import Tower
from trainer.vocabularies import Vocabularies


class CandidateTower(Tower):
    """Item id (unseen items share a trained "unknown" row), category, language, the mean of
    its tags and its age in days (log-scaled, with a missing flag), through an MLP.

    Input: a mapping with the inputs of :func:`recsys.model_contract.feature_spec.candidate_inputs`.
    Output: float32 [B, embedding_dim], unit length.
    """

    def __init__(self, cfg: RetrievalModelConfig, vocab: Vocabularies, **kwargs):
        super().__init__(cfg, vocab, **kwargs)
        self.item = LookupEmbedding(vocab.item_ids, cfg.id_embedding_dim, cfg.id_dropout,
                                    name="item_id")
        self.category = LookupEmbedding(vocab.categories, cfg.feature_embedding_dim,
                                        name="item_category")
        self.language = LookupEmbedding(vocab.languages, cfg.feature_embedding_dim,
                                        name="item_language")
        self.tags = LookupEmbedding(vocab.tags, cfg.feature_embedding_dim, name="item_tags")
        self.tag_pooling = HistoryPooling(None)
        self.head = mlp(cfg.hidden_units, cfg.embedding_dim, "candidate_mlp")

    def call(self, features: Mapping[str, tf.Tensor], training: bool | None = None):
        tag_ids = self.tags.indices(fixed_width(features["item_tags"], self.cfg.max_tags, ""))
        tags = self.tag_pooling(self.tags.embedding(tag_ids), tag_ids != PAD_INDEX)
        age = tf.cast(features["item_age_days"], tf.float32)
        missing = tf.math.is_nan(age)
        age = tf.where(missing, 0.0, tf.math.log1p(tf.maximum(age, 0.0)) / 10.0)
        parts = [
            self.item(features["item_id"], training=training),
            self.category(features["item_category"]), self.language(features["item_language"]),
            tags, age[:, tf.newaxis], tf.cast(missing, tf.float32)[:, tf.newaxis],
        ]
        return self.head(tf.concat(parts, axis=-1))
