"""Score fusion in TensorFlow, for the exported ``rank`` signature; the NumPy version and the
rules are :mod:`recsys.model_contract.fusion` (a test holds the two equal)."""

from __future__ import annotations

import numpy as np

from recsys.model_contract.fusion import EPSILON, fuse


def fuse_tf(click, retrieval, weight: float):
    """The same for one request in a SavedModel: ``click`` and ``retrieval`` are [N]."""
    import tensorflow as tf

    if weight == 0:
        return click
    retrieval = tf.cast(retrieval, tf.float32)
    finite = tf.math.is_finite(retrieval)
    lowest = tf.reduce_min(tf.where(finite, retrieval, tf.fill(tf.shape(retrieval), np.inf)))
    lowest = tf.where(tf.math.is_finite(lowest), lowest, 0.0)
    retrieval = tf.where(finite, retrieval, lowest)

    def standardised(x):
        mean, variance = tf.nn.moments(x, axes=[0])
        return (x - mean) / (tf.sqrt(variance) + EPSILON)

    return standardised(click) + weight * standardised(retrieval)


__all__ = ["fuse", "fuse_tf"]
