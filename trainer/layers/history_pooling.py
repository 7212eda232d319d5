"""Pooling of a variable-length, most-recent-first sequence of embeddings."""

from __future__ import annotations

import tensorflow as tf


def fixed_width(values: tf.Tensor, width: int, pad) -> tf.Tensor:
    """``values`` [B, T] truncated or right-padded with ``pad`` to [B, width] (static width),
    so clients may send lists of any length, even 0."""
    values = values[:, :width]
    missing = width - tf.shape(values)[1]
    padded = tf.pad(values, [[0, 0], [0, missing]], constant_values=pad)
    return tf.reshape(padded, [-1, width])


class HistoryPooling(tf.keras.layers.Layer):
    """Masked mean and recency-weighted mean of a sequence, concatenated.

    The i-th entry (0 = most recent) weighs ``decay ** i`` in the recency mean; with ``decay``
    None only the plain mean is returned. Padded entries (mask False) weigh nothing; an empty
    sequence pools to zeros.

    Input: embeddings float32 [B, T, D], mask bool [B, T].
    Output: float32 [B, 2 * D] (or [B, D] without decay).
    """

    def __init__(self, decay: float | None, **kwargs):
        super().__init__(**kwargs)
        self.decay = decay

    def call(self, embeddings: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        mask = tf.cast(mask, embeddings.dtype)
        all_weights = [mask]
        if self.decay is not None:
            positions = tf.cast(tf.range(tf.shape(embeddings)[1]), embeddings.dtype)
            recency = tf.pow(tf.constant(self.decay, embeddings.dtype), positions)
            all_weights.append(mask * recency[tf.newaxis, :])
        pooled = []
        for weights in all_weights:
            total = tf.reduce_sum(weights, axis=1, keepdims=True)
            summed = tf.reduce_sum(embeddings * weights[:, :, tf.newaxis], axis=1)
            pooled.append(tf.math.divide_no_nan(summed, total))
        return tf.concat(pooled, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "decay": self.decay}
