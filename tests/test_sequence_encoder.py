"""The query tower's causal sequence encoder: order matters, an entry never reads newer ones
before the last block, padding is invisible and an empty history encodes to zeros."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from trainer.layers.sequence_encoder import GAP_BUCKETS, CausalSequenceEncoder, gap_buckets
from trainer.layers.transformer_block import TransformerBlock

T, D = 6, 8


def _inputs(rng, rows=3, lengths=(6, 4, 0)):
    entries = rng.normal(size=(rows, T, D)).astype(np.float32)
    gaps = np.sort(rng.uniform(0, 1e6, (rows, T)), axis=1).astype(np.float32)
    mask = np.arange(T)[None, :] < np.asarray(lengths)[:, None]
    return entries, gaps, mask


def _encoder(blocks=2):
    tf.keras.utils.set_random_seed(0)
    return CausalSequenceEncoder(T, blocks, 2, 16, dropout=0.0)


def test_the_order_of_the_entries_changes_the_encoding():
    rng = np.random.default_rng(0)
    entries, gaps, mask = _inputs(rng)
    encoder = _encoder()
    before = encoder(entries, gaps, mask).numpy()
    swapped = entries.copy()
    swapped[:, [1, 2]] = swapped[:, [2, 1]]
    after = encoder(swapped, gaps, mask).numpy()
    assert not np.allclose(before[:2], after[:2], atol=1e-4)


def test_a_causal_block_never_reads_newer_entries():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, T, D)).astype(np.float32)
    mask = np.ones((2, T), bool)
    block = TransformerBlock(2, 16, 0.0, causal=True)
    out = block(x, mask).numpy()
    newer = x.copy()
    newer[:, :2] += 5.0  # change the two most recent entries
    changed = block(newer, mask).numpy()
    assert np.allclose(out[:, 2:], changed[:, 2:], atol=1e-5)  # older positions: the same
    assert not np.allclose(out[:, :2], changed[:, :2], atol=1e-3)
    full = TransformerBlock(2, 16, 0.0)
    full(x, mask)
    full.set_weights(block.get_weights())
    assert not np.allclose(full(newer, mask).numpy()[:, 2:], out[:, 2:], atol=1e-3)


def test_padding_is_invisible_and_an_empty_history_encodes_to_zeros():
    rng = np.random.default_rng(2)
    entries, gaps, mask = _inputs(rng)
    encoder = _encoder()
    out = encoder(entries, gaps, mask).numpy()
    noisy = entries.copy()
    noisy[~mask] = rng.normal(size=noisy[~mask].shape) * 10
    noisy_gaps = gaps.copy()
    noisy_gaps[~mask] = 1e9
    assert np.allclose(encoder(noisy, noisy_gaps, mask).numpy(), out, atol=1e-5)
    assert np.all(out[2] == 0.0)


def test_gaps_fall_in_log_buckets():
    gaps = tf.constant([-5.0, 0.0, 2.0, 60.0, 86_400.0, 1e12])
    buckets = gap_buckets(gaps).numpy()
    assert buckets[0] == buckets[1] == 1
    assert list(buckets) == sorted(buckets) and buckets[-1] == GAP_BUCKETS


def test_no_blocks_is_refused():
    with pytest.raises(ValueError, match="at least one block"):
        CausalSequenceEncoder(T, 0, 2, 16)
