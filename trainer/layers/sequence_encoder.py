"""A causal transformer over a most-recent-first sequence, read at its most recent entry
(SASRec-style): what the query tower knows of the order of a user's recent items."""

from __future__ import annotations

import tensorflow as tf

from trainer.layers.transformer_block import TransformerBlock

GAP_BUCKETS = 16  # log-spaced buckets of the seconds between an entry and the request


def gap_buckets(gaps_s: tf.Tensor) -> tf.Tensor:
    """int32 bucket 1..GAP_BUCKETS of each gap (seconds; negatives count as 0):
    ``floor(log1p(gap) / 1.2)``, the last bucket holding everything past ~2 years."""
    scaled = tf.math.log1p(tf.maximum(gaps_s, 0.0)) / 1.2
    return tf.cast(tf.clip_by_value(scaled, 0, GAP_BUCKETS - 1), tf.int32) + 1


class ReadAtFirst(TransformerBlock):
    """The last block of :class:`CausalSequenceEncoder`: only position 0 (the most recent
    entry) attends, to every unmasked position, then the feed-forward; the other positions'
    outputs would never be read, so they are not computed.

    Input: x float32 [B, T, D], mask bool [B, T]. Output: float32 [B, D].
    """

    def call(self, x: tf.Tensor, mask: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        first = x[:, :1]
        attended = self.attention(first, x, attention_mask=mask[:, tf.newaxis, :],
                                  training=training)
        return self.residual(first, attended, training)[:, 0]


class CausalSequenceEncoder(tf.keras.layers.Layer):
    """``num_blocks`` post-norm transformer blocks over a sequence ordered most recent first,
    causal: each entry attends to itself and to older entries only, so the encoding of a
    history is what it was when its latest entry arrived, followed by what came since (as in
    SASRec, read at the latest position). Every block but the last runs at every position;
    the last runs at position 0 only (:class:`ReadAtFirst`). Tokens are the sum of the
    given entry vectors, a learned position (0 = most recent) and a learned bucket of the
    entry's age at the request (:func:`gap_buckets`). An empty sequence encodes to zeros.

    Input: entries float32 [B, T, D], gaps_s float32 [B, T], mask bool [B, T] (True = a real
    entry; real entries come first). Output: float32 [B, D].
    """

    def __init__(self, length: int, num_blocks: int, num_heads: int, ff_units: int,
                 dropout: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        if num_blocks < 1:
            raise ValueError(f"a sequence encoder needs at least one block, got {num_blocks}")
        self.length, self.num_blocks = length, num_blocks
        self.num_heads, self.ff_units, self.dropout = num_heads, ff_units, dropout

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.positions = tf.keras.layers.Embedding(self.length, dim, name="positions")
        self.gaps = tf.keras.layers.Embedding(GAP_BUCKETS + 1, dim, name="gap_buckets")
        self.blocks = [TransformerBlock(self.num_heads, self.ff_units, self.dropout,
                                        causal=True, name=f"causal_{i}")
                       for i in range(self.num_blocks - 1)]
        self.read = ReadAtFirst(self.num_heads, self.ff_units, self.dropout, name="read")
        super().build(input_shape)

    def call(self, entries: tf.Tensor, gaps_s: tf.Tensor, mask: tf.Tensor,
             training: bool | None = None) -> tf.Tensor:
        x = (entries + self.positions(tf.range(self.length))[tf.newaxis]
             + self.gaps(gap_buckets(gaps_s)))
        x = x * tf.cast(mask, x.dtype)[:, :, tf.newaxis]
        for block in self.blocks:
            x = block(x, mask, training=training)
        return self.read(x, mask, training=training) * tf.cast(mask[:, :1], x.dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "length": self.length, "num_blocks": self.num_blocks,
                "num_heads": self.num_heads, "ff_units": self.ff_units,
                "dropout": self.dropout}


__all__ = ["CausalSequenceEncoder", "ReadAtFirst", "gap_buckets", "GAP_BUCKETS"]
