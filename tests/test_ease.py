"""EASE in the quality benchmark's harness: the closed form holds and scores use only the
train split (the reference figure of EVALUATION.md on ml-latest-small is checked by
tests/test_quality_movielens.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from retrieval_support import split_data

from trainer.baselines.ease import ease_scores, ease_weights, interaction_matrix
from trainer.evaluation_set import build_evaluation_set
from trainer.training_data import RetrievalData


def _data(rng, users=40, items=25, per_user=8):
    rows = []
    for u in range(users):
        chosen = rng.choice(items, per_user, replace=False)
        for t, i in enumerate(chosen):
            rows.append({"user_id": f"u{u}", "item_id": f"i{i}", "example_id": f"{u}-{t}",
                         "event_timestamp": pd.Timestamp("2026-01-01", tz="UTC")
                         + pd.Timedelta(minutes=t),
                         "split": "train" if t < per_user - 2 else "test"})
    return split_data(rows, items)


def test_the_weights_solve_the_regularised_least_squares_with_a_zero_diagonal():
    rng = np.random.default_rng(0)
    data = _data(rng)
    es = build_evaluation_set(data)
    matrix, _ = interaction_matrix(data.train, es)
    lam = 5.0
    weights = ease_weights(matrix, lam)
    assert np.allclose(np.diag(weights), 0.0)
    x = matrix.toarray()
    # column j: argmin ||x_j - X b||^2 + lam ||b||^2 subject to b_j = 0, solved directly
    for j in range(0, x.shape[1], 6):
        others = [i for i in range(x.shape[1]) if i != j]
        a = x[:, others]
        solution = np.linalg.solve(a.T @ a + lam * np.eye(len(others)), a.T @ x[:, j])
        assert np.allclose(weights[others, j], solution, atol=1e-8)


def test_scores_read_only_the_train_split_and_binary_counts():
    rng = np.random.default_rng(1)
    data = _data(rng)
    es = build_evaluation_set(data)
    scores = ease_scores(data.train, es, 10.0)
    assert scores.shape == (len(es.queries), len(es.candidates))
    repeated = RetrievalData(pd.concat([data.train, data.train]), data.test, data.catalogue)
    assert np.allclose(ease_scores(repeated.train, es, 10.0), scores)
    changed_test = data.test.assign(item_id="i0")
    again = build_evaluation_set(RetrievalData(data.train, changed_test, data.catalogue))
    assert np.allclose(ease_scores(data.train, again, 10.0), scores)


def test_a_bad_lambda_is_refused():
    rng = np.random.default_rng(2)
    data = _data(rng)
    matrix, _ = interaction_matrix(data.train, build_evaluation_set(data))
    with pytest.raises(ValueError, match="lambda"):
        ease_weights(matrix, 0.0)
