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
        return self.core(self.encode(features, training), training=training)

    def encode(self, features: Mapping[str, tf.Tensor], training: bool | None = None
               ) -> dict[str, tf.Tensor]:
        """Every string lookup, so that :meth:`core` reads only numbers: int64 indices (0
        padding / missing, 1 unknown; the item id dropped to unknown at ``training``'s rate),
        the tags at their fixed width, and the age as it came."""
        return {
            "item_id": self.item.indices(features["item_id"], training),
            "item_category": self.category.indices(features["item_category"]),
            "item_language": self.language.indices(features["item_language"]),
            "item_tags": self.tags.indices(fixed_width(features["item_tags"],
                                                       self.cfg.max_tags, "")),
            "item_age_days": features["item_age_days"],
        }

    def drop_ids(self, encoded: Mapping[str, tf.Tensor], training: bool | None = None
                 ) -> dict[str, tf.Tensor]:
        """:meth:`encode`'s output made without ``training``, with the item id dropout that
        ``training`` applies."""
        return {**encoded, "item_id": self.item.drop(encoded["item_id"], training)}

    def core(self, encoded: Mapping[str, tf.Tensor], training: bool | None = None):
        """The tower on :meth:`encode`'s numbers (no string operation)."""
        tag_ids = encoded["item_tags"]
        tags = self.tag_pooling(self.tags.embedding(tag_ids), tag_ids != PAD_INDEX)
        age = tf.cast(encoded["item_age_days"], tf.float32)
        missing = tf.math.is_nan(age)
        age = tf.where(missing, 0.0, tf.math.log1p(tf.maximum(age, 0.0)) / 10.0)
        parts = [
            self.item.embedding(encoded["item_id"]),
            self.category.embedding(encoded["item_category"]),
            self.language.embedding(encoded["item_language"]),
            tags, age[:, tf.newaxis], tf.cast(missing, tf.float32)[:, tf.newaxis],
        ]
        return self.head(tf.concat(parts, axis=-1))
