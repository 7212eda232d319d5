"""The BST transformer block: masking, shapes, training flag, save -> load."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from trainer.layers.transformer_block import TransformerBlock


def _inputs():
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(3, 5, 8)).astype(np.float32))
    mask = tf.constant([[True] * 5, [True, True, False, False, False], [False] * 5])
    return x, mask


def test_shapes_and_padding():
    x, mask = _inputs()
    block = TransformerBlock(num_heads=2, ff_units=16, dropout=0.0)
    out = block(x, mask).numpy()
    assert out.shape == (3, 5, 8) and np.all(np.isfinite(out))
    assert np.all(out[1, 2:] == 0) and np.all(out[2] == 0)


def test_padded_positions_do_not_change_the_others():
    x, mask = _inputs()
    block = TransformerBlock(num_heads=2, ff_units=16, dropout=0.0)
    before = block(x, mask).numpy()
    changed = x.numpy().copy()
    changed[1, 2:] = 100.0  # values behind the mask
    after = block(tf.constant(changed), mask).numpy()
    np.testing.assert_allclose(after[1, :2], before[1, :2], atol=1e-5)


def test_save_load_same_output(tmp_path):
    x, mask = _inputs()
    block = TransformerBlock(num_heads=2, ff_units=16, dropout=0.1)
    module = tf.Module()
    module.block = block
    module.run = tf.function(lambda a, m: block(a, m, training=False),
                             input_signature=[tf.TensorSpec([None, None, 8], tf.float32),
                                              tf.TensorSpec([None, None], tf.bool)])
    expected = module.run(x, mask).numpy()
    tf.saved_model.save(module, str(tmp_path))
    loaded = tf.saved_model.load(str(tmp_path))
    np.testing.assert_allclose(loaded.run(x, mask).numpy(), expected, atol=1e-6)
    config = block.get_config()
    assert (config["num_heads"], config["ff_units"], config["dropout"]) == (2, 16, 0.1)
