"""Target attention: each candidate reads an encoded history that is computed once per user."""

from __future__ import annotations

import math

import tensorflow as tf

from trainer.layers.transformer_block import PostNormBlock


class TargetAttention(PostNormBlock):
    """One candidate token attends, over ``num_heads`` heads, to its user's encoded history
    and to itself; then a position-wise feed-forward. Each part has dropout, a residual
    connection and layer normalisation (:class:`PostNormBlock`).

    The history's keys and values are projected once per distinct history (``memory`` holds
    G histories, ``group`` [B] names each candidate's), so a request ranking 200 candidates
    for one user projects its history once, not 200 times. Padded history positions
    (``memory_mask`` False) are never attended to; with an empty history the candidate
    attends to itself only.

    Input: candidate float32 [B, D], memory float32 [G, T, D], memory_mask bool [G, T],
    group int32 [B]. Output: float32 [B, D].
    """

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.key_dim = max(1, dim // self.num_heads)
        shape = [dim, self.num_heads, self.key_dim]

        def projection(name, weight_shape):
            return (self.add_weight(name=f"{name}_kernel", shape=weight_shape,
                                    initializer="glorot_uniform"),
                    self.add_weight(name=f"{name}_bias", shape=weight_shape[-2:] if
                                    name != "output" else [dim], initializer="zeros"))

        self.query = projection("query", shape)
        self.key = projection("key", shape)
        self.value = projection("value", shape)
        self.output_projection = projection("output", [self.num_heads, self.key_dim, dim])
        self.drop_attention = tf.keras.layers.Dropout(self.dropout)
        self.build_residual(dim)
        super().build(input_shape)

    def call(self, candidate: tf.Tensor, memory: tf.Tensor, memory_mask: tf.Tensor,
             group: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        scale = 1.0 / math.sqrt(self.key_dim)
        query = (tf.einsum("bd,dhk->bhk", candidate, self.query[0]) + self.query[1]) * scale
        keys = tf.gather(tf.einsum("gtd,dhk->gthk", memory, self.key[0]) + self.key[1], group)
        values = tf.gather(tf.einsum("gtd,dhk->gthk", memory, self.value[0]) + self.value[1],
                           group)
        own_key = tf.einsum("bd,dhk->bhk", candidate, self.key[0]) + self.key[1]
        own_value = tf.einsum("bd,dhk->bhk", candidate, self.value[0]) + self.value[1]
        history_scores = tf.einsum("bhk,bthk->bht", query, keys)
        mask = tf.gather(memory_mask, group)[:, tf.newaxis, :]
        history_scores = tf.where(mask, history_scores, tf.constant(-1e9, candidate.dtype))
        own_score = tf.reduce_sum(query * own_key, axis=-1)[:, :, tf.newaxis]
        weights = tf.nn.softmax(tf.concat([history_scores, own_score], axis=-1), axis=-1)
        weights = self.drop_attention(weights, training=training)
        read = (tf.einsum("bht,bthk->bhk", weights[:, :, :-1], values)
                + weights[:, :, -1:] * own_value)
        attended = tf.einsum("bhk,hkd->bd", read, self.output_projection[0]) \
            + self.output_projection[1]
        return self.residual(candidate, attended, training)


__all__ = ["TargetAttention"]
