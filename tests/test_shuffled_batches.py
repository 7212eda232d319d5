"""trainer.batches.shuffled_batches: the batches of from_tensor_slices + shuffle + batch, made
by gathering rows."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from trainer.batches import shuffled_batches


def _epochs(dataset, epochs):
    return [[tf.nest.map_structure(lambda t: t.numpy(), batch) for batch in dataset]
            for _ in range(epochs)]


@pytest.mark.parametrize("rows, batch", [(37, 8), (8, 8), (5, 16), (1, 3)])
def test_the_same_batches_in_the_same_order_every_epoch_as_slicing_and_shuffling(rows, batch):
    rng = np.random.default_rng(rows)
    arrays = ({"ids": rng.integers(0, 100, (rows, 4)), "name": np.array(
        [f"r{i}" for i in range(rows)])}, rng.normal(size=rows).astype(np.float32))
    reference = (tf.data.Dataset.from_tensor_slices(arrays)
                 .shuffle(rows, seed=7, reshuffle_each_iteration=True).batch(batch))
    got, expected = _epochs(shuffled_batches(arrays, batch, 7), 3), _epochs(reference, 3)
    assert len(got) == len(expected) == 3
    for got_epoch, expected_epoch in zip(got, expected):
        assert len(got_epoch) == len(expected_epoch) == -(-rows // batch)
        for a, b in zip(got_epoch, expected_epoch):
            tf.nest.assert_same_structure(a, b)
            for x, y in zip(tf.nest.flatten(a), tf.nest.flatten(b)):
                np.testing.assert_array_equal(x, y)
    # each epoch is a permutation of every row, and the orders change between epochs
    firsts = [np.concatenate([b[1] for b in epoch]) for epoch in got]
    for order in firsts:
        np.testing.assert_array_equal(np.sort(order), np.sort(arrays[1]))
    if rows > 5:
        assert not np.array_equal(firsts[0], firsts[1])


def test_another_seed_gives_another_order():
    arrays = {"x": np.arange(50)}
    one = np.concatenate([b["x"].numpy() for b in shuffled_batches(arrays, 10, 1)])
    two = np.concatenate([b["x"].numpy() for b in shuffled_batches(arrays, 10, 2)])
    assert sorted(one) == sorted(two) == list(range(50)) and not np.array_equal(one, two)


def test_no_rows_give_no_batches():
    assert list(shuffled_batches({"x": np.zeros((0, 3))}, 4, 0)) == []


@pytest.mark.parametrize("rows, batch", [(37, 8), (8, 8)])
def test_repeat_gives_every_epochs_order_from_one_iterator(rows, batch):
    arrays = {"x": np.arange(rows)}
    separate = _epochs(shuffled_batches(arrays, batch, 3), 3)
    endless = iter(shuffled_batches(arrays, batch, 3, repeat=True))
    steps = -(-rows // batch)
    for epoch in separate:
        got = [next(endless) for _ in range(steps)]
        assert [len(b["x"]) for b in got] == [len(b["x"]) for b in epoch]
        np.testing.assert_array_equal(np.concatenate([b["x"] for b in got]),
                                      np.concatenate([b["x"] for b in epoch]))


def test_keras_fit_reads_the_same_batches_from_the_endless_dataset_as_train_retrieval_expects():
    """train_retrieval feeds fit ``shuffled_batches(..., repeat=True).skip(steps)`` so that
    training sees the batches fit used to read from the finite dataset (orders 1, 2, ...:
    fit makes one iterator it never reads). If tf_keras changes that, this fails."""
    rows, batch, epochs = 50, 8, 3
    arrays = {"x": np.arange(rows)}
    steps = -(-rows // batch)

    def batches_fit_reads(dataset, **fit_args):
        seen = []

        class Recorder(tf.keras.Model):
            def __init__(self):
                super().__init__()
                self.w = tf.Variable(1.0)

            def train_step(self, data):
                seen.append(data["x"].numpy())
                return {"loss": self.w * 1.0}

        model = Recorder()
        model.compile(run_eagerly=True)
        model.fit(dataset, epochs=epochs, verbose=0, **fit_args)
        return np.concatenate(seen)

    finite = batches_fit_reads(shuffled_batches(arrays, batch, 5))
    endless = batches_fit_reads(shuffled_batches(arrays, batch, 5, repeat=True).skip(steps),
                                steps_per_epoch=steps)
    np.testing.assert_array_equal(endless, finite)
    orders = np.concatenate([np.concatenate([b["x"] for b in epoch]) for epoch in
                             _epochs(shuffled_batches(arrays, batch, 5), epochs + 1)])
    np.testing.assert_array_equal(finite, orders[rows:])
