"""Runs of equal consecutive rows, so that what rows share is computed once per run."""

from __future__ import annotations

import tensorflow as tf


def consecutive_groups(*columns: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Groups of consecutive rows whose ``columns`` (each [B, ...]) are all equal.

    Returns ``(group, first)``: ``group`` int32 [B], each row's group (0, 1, ... in row
    order); ``first`` int32 [G], each group's first row. ``tf.gather(x[first], group)`` equals
    ``x`` for any ``x`` that is a function of one row's ``columns``. A ranked request's
    candidates share one user's history, so its rows form one group (and calls batched
    across requests one group per request); NaN differs from itself, so rows holding NaN
    only form larger groups when the NaN is cleaned first.
    """
    rows = tf.shape(columns[0])[0]
    differs = tf.zeros([tf.maximum(rows - 1, 0)], tf.bool)
    for column in columns:
        change = tf.not_equal(column[1:], column[:-1])
        differs = tf.logical_or(differs, tf.reduce_any(
            tf.reshape(change, [tf.shape(change)[0], -1]), axis=1))
    starts = tf.concat([tf.ones([tf.minimum(rows, 1)], tf.bool), differs], axis=0)
    group = tf.cumsum(tf.cast(starts, tf.int32)) - 1
    first = tf.cast(tf.where(starts)[:, 0], tf.int32)
    return group, first


__all__ = ["consecutive_groups"]
