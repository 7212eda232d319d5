"""The SASRec-style baseline: every train positive after a user's first is a target once, a
position never reads newer items, it learns a sequential pattern that no co-occurrence model
can, and the same seed gives the same scores (its row on ml-latest-small is in
test_quality_movielens.py's benchmark run)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from retrieval_support import split_data

from recsys.errors import ConfigError
from trainer.baselines.sasrec import (
    Sasrec,
    SasrecConfig,
    recent_first,
    sasrec_scores,
    training_windows,
    user_sequences,
)
from trainer.evaluation_set import build_evaluation_set

ITEMS = 12


def _cyclic_data(users=36, length=10):
    """Every user walks the items in one cycle (i0 -> i1 -> ... -> i11 -> i0), from their own
    start: the next item is fully determined by the last one, in time order only."""
    rows = []
    for u in range(users):
        for t in range(length + 1):
            rows.append({"user_id": f"u{u}", "item_id": f"i{(u + t) % ITEMS}",
                         "example_id": f"{u}-{t:02d}",
                         "event_timestamp": pd.Timestamp("2026-01-01", tz="UTC")
                         + pd.Timedelta(minutes=t), "split": "train" if t < length else "test"})
    return split_data(rows, ITEMS)


def test_windows_hold_every_target_once_most_recent_first():
    sequences = {"a": np.arange(1, 8, dtype=np.int32), "b": np.array([5], np.int32)}
    inputs, targets = training_windows(sequences, 3)
    # 7 items give 6 targets in windows of 3; a single item gives none
    assert sorted(targets[targets > 0].tolist()) == [2, 3, 4, 5, 6, 7]
    assert inputs.tolist() == [[6, 5, 4], [3, 2, 1]]
    assert targets.tolist() == [[7, 6, 5], [4, 3, 2]]
    assert recent_first(np.array([1, 2], np.int32), 4).tolist() == [2, 1, 0, 0]


def test_sequences_follow_time_and_skip_items_outside_the_candidates():
    data = _cyclic_data(users=2, length=4)
    es = build_evaluation_set(data)
    train = pd.concat([data.train.iloc[::-1], data.train.iloc[:1].assign(item_id="unknown")])
    sequences = user_sequences(train, es)
    position = {item: i + 1 for i, item in enumerate(es.candidates["item_id"])}
    assert sequences["u1"].tolist() == [position[f"i{t}"] for t in range(1, 5)]


def test_a_position_never_reads_newer_items():
    tf.keras.utils.set_random_seed(0)
    model = Sasrec(ITEMS, SasrecConfig(max_length=6, dim=8, blocks=2, dropout=0.0))
    tokens = np.array([[3, 4, 5, 6, 7, 8]], np.int32)
    changed = tokens.copy()
    changed[0, :2] = [9, 10]  # the two most recent items
    before, after = model(tokens).numpy(), model(changed).numpy()
    assert np.allclose(before[0, 2:], after[0, 2:], atol=1e-5)
    assert not np.allclose(before[0, :2], after[0, :2], atol=1e-3)


@pytest.mark.parametrize("negatives", [None, 8])
def test_it_learns_what_comes_next(negatives):
    data = _cyclic_data()
    es = build_evaluation_set(data)
    cfg = SasrecConfig(max_length=8, dim=16, epochs=60, batch_size=32, negatives=negatives,
                       learning_rate=0.01, dropout=0.0)
    scores = sasrec_scores(data.train, es, cfg)
    best = np.argmax(scores, axis=1)
    truth = np.array([r[0] for r in es.relevant])
    assert (best == truth).mean() >= 0.9  # every item is as popular as any other


def test_the_same_seed_gives_the_same_scores_and_bad_settings_are_named():
    data = _cyclic_data(users=8, length=4)
    es = build_evaluation_set(data)
    cfg = SasrecConfig(max_length=4, dim=8, epochs=2)
    assert np.array_equal(sasrec_scores(data.train, es, cfg), sasrec_scores(data.train, es, cfg))
    with pytest.raises(ConfigError, match="dim"):
        SasrecConfig(dim=0)
    with pytest.raises(ConfigError, match="negatives"):
        SasrecConfig(negatives=0)
