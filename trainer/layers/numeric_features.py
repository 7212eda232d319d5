"""Numeric features with missing values, log-scaled and standardised."""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf


class LogStandardize(tf.keras.layers.Layer):
    """For each named feature: ``(sign(x) log1p(|x|) - mean) / std`` and a missing flag.

    Missing values (NaN) become 0 with the flag set, so the model can tell "unknown" from
    "average". ``stats`` maps each feature to the (mean, std) of its training values after the
    log transform.

    Input: a mapping name -> float32 [B]. Output: float32 [B, 2 * len(stats)] in the order of
    ``stats``.
    """

    def __init__(self, stats: Mapping[str, tuple[float, float]], **kwargs):
        super().__init__(**kwargs)
        self.stats = {name: (float(m), float(s)) for name, (m, s) in stats.items()}

    def call(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        columns = []
        for name, (mean, std) in self.stats.items():
            x = tf.cast(features[name], tf.float32)
            missing = tf.math.is_nan(x)
            scaled = (tf.sign(x) * tf.math.log1p(tf.abs(x)) - mean) / std
            columns.append(tf.where(missing, tf.zeros_like(x), scaled))
            columns.append(tf.cast(missing, tf.float32))
        return tf.stack(columns, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "stats": self.stats}
