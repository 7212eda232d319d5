"""String values to embeddings, with a padding id and an out-of-vocabulary id."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

PAD_INDEX = 0  # "" (missing / padding)
OOV_INDEX = 1  # any value not in the vocabulary
_PLACEHOLDER = "\x00no-values"  # stands in for an empty vocabulary (StringLookup refuses [])


class LookupEmbedding(tf.keras.layers.Layer):
    """Looks up strings and embeds them.

    ``""`` maps to index 0 (padding and missing values: callers mask it out of sequences; for a
    single missing value it is a trained "missing" row), values outside
    the vocabulary to index 1 (a trained "unknown" row). With ``dropout_rate`` > 0, that share
    of known values is replaced by the unknown id during training, so the unknown row learns
    what an unseen user or item looks like on average.

    Input: strings of any shape S. Output: float32 [*S, dim]; ``indices(x)`` gives int64 [*S].
    """

    def __init__(self, vocabulary: Sequence[str], dim: int, dropout_rate: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.vocabulary = list(vocabulary)
        self.dim = dim
        self.dropout_rate = dropout_rate
        entries = self.vocabulary or [_PLACEHOLDER]
        self.lookup = tf.keras.layers.StringLookup(vocabulary=entries, mask_token="",
                                                   num_oov_indices=1)
        self.embedding = tf.keras.layers.Embedding(len(entries) + 2, dim)
        self.built = True  # no weights of its own; callers may use .indices / .embedding only

    def indices(self, values: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        return self.drop(self.lookup(values), training)

    def drop(self, ids: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """``ids`` (from :meth:`indices` without ``training``) with ``dropout_rate`` of the
        known ones replaced by the unknown id when ``training``."""
        if training and self.dropout_rate > 0.0:
            drop = tf.random.uniform(tf.shape(ids)) < self.dropout_rate
            ids = tf.where(drop & (ids != PAD_INDEX), tf.constant(OOV_INDEX, ids.dtype), ids)
        return ids

    def call(self, values: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        return self.embedding(self.indices(values, training))

    def get_config(self) -> dict:
        return {**super().get_config(), "vocabulary": self.vocabulary, "dim": self.dim,
                "dropout_rate": self.dropout_rate}
