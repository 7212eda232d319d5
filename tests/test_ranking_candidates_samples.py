"""Ranker inputs: exact top candidates in chunks, and negative sampling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.errors import ConfigError
from trainer.ranking.candidates import top_candidates
from trainer.ranking.samples import NegativeSampling, sample_rows


def test_top_candidates_equal_a_full_sort_across_chunks():
    rng = np.random.default_rng(1)
    queries = rng.normal(size=(37, 8)).astype(np.float32)
    items = rng.normal(size=(50, 8)).astype(np.float32)
    exclude = [np.array([0, 1, 2])] * 37
    indices, scores = top_candidates(queries, items, 5, exclude, chunk=8)
    full = queries @ items.T
    full[:, :3] = -np.inf
    expected = np.argsort(-full, axis=1, kind="stable")[:, :5]
    assert (indices == expected).all()
    np.testing.assert_allclose(scores, np.take_along_axis(full, expected, axis=1), rtol=1e-6)


def test_top_candidates_pad_when_everything_is_excluded():
    items = np.eye(3, dtype=np.float32)
    indices, scores = top_candidates(np.ones((1, 3), np.float32), items, 3,
                                     [np.array([0, 1])])
    assert indices.tolist() == [[2, -1, -1]]
    assert scores[0, 0] == 1.0 and np.isneginf(scores[0, 1:]).all()


def test_top_candidates_refuse_mismatched_sizes():
    with pytest.raises(ValueError, match="differ in size: 3 != 4"):
        top_candidates(np.ones((1, 3)), np.ones((2, 4)), 1)


def _examples():
    return pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["a", "b"],
                         "history_item_ids": [["c"], []], "event_timestamp": [1, 2]})


def test_negatives_avoid_the_positive_and_the_history_and_are_reproducible():
    retrieved = np.array([["a", "c", "d", "e", ""], ["b", "", "f", "g", "h"]])
    items = np.array(list("abcdefghij"))
    counts = np.arange(1, 11)
    sampling = NegativeSampling(retrieved=2, popular=3, seed=7)
    rows = sample_rows(_examples(), retrieved, items, counts, sampling)
    again = sample_rows(_examples(), retrieved, items, counts, sampling)
    pd.testing.assert_frame_equal(rows, again)
    first = rows[rows["example_index"] == 0]
    assert first["label"].tolist() == [1.0] + [0.0] * 5
    assert first.iloc[0]["item_id"] == "a"
    negatives = first[first["label"] == 0]
    assert negatives[negatives["negative_source"] == "retrieved"]["item_id"].tolist() == [
        "d", "e"]
    assert not ({"a", "c"} & set(negatives["item_id"]))
    assert len(set(negatives["item_id"])) == 5
    second = rows[rows["example_index"] == 1]
    assert second[second["negative_source"] == "retrieved"]["item_id"].tolist() == ["f", "g"]
    assert (second["user_id"] == "u2").all()


def test_sampling_config_is_checked():
    with pytest.raises(ConfigError, match="retrieved negatives must be an integer >= 0"):
        NegativeSampling(retrieved=-1)
    with pytest.raises(ConfigError, match="at least one negative"):
        NegativeSampling(retrieved=0, popular=0)
    with pytest.raises(ValueError, match="1 retrieved lists for 2 examples"):
        sample_rows(_examples(), np.array([["x"]]), np.array(["x"]), np.array([1]))
