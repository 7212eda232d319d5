"""Score fusion of the ranker and the two-tower score: NumPy and TensorFlow agree."""

from __future__ import annotations

import numpy as np
import pytest

import recsys  # noqa: F401  (Keras 2 before TensorFlow)
from trainer.ranking.fusion import fuse, fuse_tf


def test_fusion_standardises_each_list_and_weights_the_two_tower_score():
    click = np.array([[2.0, 1.0, 0.0], [10.0, 10.0, 10.0]])
    retrieval = np.array([[0.0, 1.0, 2.0], [0.3, 0.1, 0.2]])
    fused = fuse(click, retrieval, 2.0)
    z = np.array([-1.0, 0.0, 1.0]) * np.sqrt(1.5)
    np.testing.assert_allclose(fused[0], -z + 2 * z, atol=1e-5)
    assert list(np.argsort(-fused[1])) == [0, 2, 1]  # equal clicks: two-tower decides
    np.testing.assert_array_equal(fuse(click, retrieval, 0.0), click)


def test_non_finite_two_tower_scores_count_as_the_lowest():
    fused = fuse(np.zeros(4), np.array([0.5, np.nan, -np.inf, 0.2]), 1.0)
    assert np.all(np.isfinite(fused))
    assert fused[1] == fused[2] == fused[3] and fused[0] > fused[3]
    assert np.all(np.isfinite(fuse(np.zeros(2), np.array([np.nan, np.nan]), 1.0)))


@pytest.mark.parametrize("weight", [0.0, 0.5, 3.0])
def test_tensorflow_equals_numpy(weight):
    rng = np.random.default_rng(0)
    click = rng.normal(size=50).astype(np.float32)
    retrieval = rng.normal(size=50).astype(np.float32)
    retrieval[[3, 7]] = np.nan
    import tensorflow as tf

    got = fuse_tf(tf.constant(click), tf.constant(retrieval), weight).numpy()
    np.testing.assert_allclose(got,
                               fuse(click, retrieval, weight), rtol=1e-4, atol=1e-4)
