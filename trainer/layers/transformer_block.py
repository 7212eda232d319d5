"""Post-norm transformer blocks over a padded sequence: self-attention over the sequence
(:class:`TransformerBlock`), and the pieces they share with target attention."""

from __future__ import annotations

import tensorflow as tf


class PostNormBlock(tf.keras.layers.Layer):
    """What a post-norm transformer block does around its attention: dropout, a residual
    connection and layer normalisation, then a position-wise feed-forward with the same.
    Subclasses build their attention and call :meth:`residual` with its output."""

    def __init__(self, num_heads: int, ff_units: int, dropout: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.ff_units, self.dropout = num_heads, ff_units, dropout

    def build_residual(self, dim: int) -> None:
        self.ff = tf.keras.Sequential([tf.keras.layers.Dense(self.ff_units, activation="relu"),
                                       tf.keras.layers.Dense(dim)])
        self.norm1 = tf.keras.layers.LayerNormalization(epsilon=1e-6)
        self.norm2 = tf.keras.layers.LayerNormalization(epsilon=1e-6)
        self.drop1 = tf.keras.layers.Dropout(self.dropout)
        self.drop2 = tf.keras.layers.Dropout(self.dropout)

    def residual(self, x: tf.Tensor, attended: tf.Tensor, training: bool | None) -> tf.Tensor:
        x = self.norm1(x + self.drop1(attended, training=training))
        return self.norm2(x + self.drop2(self.ff(x), training=training))

    def get_config(self) -> dict:
        return {**super().get_config(), "num_heads": self.num_heads, "ff_units": self.ff_units,
                "dropout": self.dropout}


class TransformerBlock(PostNormBlock):
    """Multi-head self-attention + position-wise feed-forward, each with dropout, a residual
    connection and layer normalisation. Padded positions (mask False) are never attended to;
    their outputs are zeroed. With ``causal``, for a sequence ordered most recent first,
    position i attends only to positions j >= i (itself and what came before it).

    Input: x float32 [B, T, D], mask bool [B, T]. Output: float32 [B, T, D].
    """

    def __init__(self, num_heads: int, ff_units: int, dropout: float = 0.1,
                 causal: bool = False, **kwargs):
        super().__init__(num_heads, ff_units, dropout, **kwargs)
        self.causal = causal

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.attention = tf.keras.layers.MultiHeadAttention(
            num_heads=self.num_heads, key_dim=max(1, dim // self.num_heads),
            dropout=self.dropout)
        self.build_residual(dim)
        super().build(input_shape)

    def call(self, x: tf.Tensor, mask: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        attend = tf.logical_and(mask[:, tf.newaxis, :], mask[:, :, tf.newaxis])
        if self.causal:
            length = tf.shape(x)[1]
            older = tf.range(length)[tf.newaxis, :] >= tf.range(length)[:, tf.newaxis]
            attend = tf.logical_and(attend, older[tf.newaxis])
        attended = self.attention(x, x, attention_mask=attend, training=training)
        return self.residual(x, attended, training) * tf.cast(mask, x.dtype)[:, :, tf.newaxis]

    def get_config(self) -> dict:
        return {**super().get_config(), "causal": self.causal}


__all__ = ["PostNormBlock", "TransformerBlock"]
