"""Frozen item vectors looked up by id (the two-tower model's candidate embeddings, read by the
ranker)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

_PLACEHOLDER = "\x00no-items"


class ItemTable(tf.keras.layers.Layer):
    """``ids[i]`` -> ``vectors[i]``; ``""`` (padding) and ids outside the table get a zero
    vector and ``known`` False. Not trainable: a model is pointed at another table (a newer
    retrieval model's) by building it again with that table and copying its other weights.

    Input: strings of any shape S. Output: (float32 [*S, D], bool [*S]).
    """

    def __init__(self, ids: Sequence[str], vectors: np.ndarray, **kwargs):
        super().__init__(trainable=False, **kwargs)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(ids):
            raise ValueError(f"{len(ids)} ids need a [{len(ids)}, dim] matrix, got "
                             f"{vectors.shape}")
        self.dim = int(vectors.shape[1])
        self.size = len(ids)
        self.lookup = tf.keras.layers.StringLookup(vocabulary=list(ids) or [_PLACEHOLDER],
                                                   mask_token="", num_oov_indices=1)
        rows = vectors if len(ids) else np.zeros((1, self.dim), np.float32)
        self.matrix = tf.constant(np.concatenate([np.zeros((2, self.dim), np.float32), rows]))
        self.built = True

    def call(self, values: tf.Tensor):
        return self.rows(self.lookup(values))

    def rows(self, index: tf.Tensor):
        """Vectors and ``known`` of indices given by ``lookup`` (0 padding, 1 unknown)."""
        return tf.gather(self.matrix, index), index > 1


__all__ = ["ItemTable"]
