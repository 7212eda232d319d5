"""Exact top candidates in chunks (the cold-start neighbours and the ranker lists use them)."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.evaluation.candidates import top_candidates


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

