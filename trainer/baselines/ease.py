"""EASE (Steck, WWW 2019): a linear item-item model with a closed form, the bar of
../shared/EVALUATION.md (lambda 200 gives its reference NDCG@10 of 0.1294).

B = argmin ||X - X B||^2 + lambda ||B||^2 with diag(B) = 0, solved as P = (X^T X + lambda I)^-1,
B = -P / diag(P) column-wise, diag(B) = 0. A user's scores are their train row of X times B.

Guarantees: X is binary (an item a user engaged with several times counts once); only the
train split enters X; the same data give the same scores. Memory is two dense items x items
float64 matrices, so this is for catalogues of tens of thousands of items, not millions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainer.evaluation_set import EvaluationSet

DEFAULT_LAMBDA = 200.0


def interaction_matrix(train: pd.DataFrame, es: EvaluationSet):
    """Binary users x candidates CSR matrix of the train split (every user in it), and the
    matrix row of each of ``es``'s query users (-1 for a user without train interactions)."""
    from scipy.sparse import csr_matrix

    position = pd.Series(np.arange(len(es.candidates)), index=es.candidates["item_id"])
    pairs = train[["user_id", "item_id"]].drop_duplicates()
    pairs = pairs[pairs["item_id"].isin(position.index)]
    users = pd.Index(pairs["user_id"].unique())
    rows = users.get_indexer(pairs["user_id"])
    cols = position.reindex(pairs["item_id"]).to_numpy(np.int64)
    matrix = csr_matrix((np.ones(len(rows), np.float64), (rows, cols)),
                        shape=(len(users), len(es.candidates)))
    return matrix, users.get_indexer(es.queries["user_id"])


def ease_weights(matrix, regularization: float = DEFAULT_LAMBDA) -> np.ndarray:
    """The items x items weight matrix B (zero diagonal)."""
    if not regularization > 0:
        raise ValueError(f"EASE's lambda must be > 0, got {regularization}")
    from scipy.linalg import lapack

    gram = (matrix.T @ matrix).toarray()
    gram[np.diag_indices_from(gram)] += regularization
    # the Gram matrix plus lambda I is symmetric positive definite: invert it through its
    # Cholesky factor (half the work of a general inverse)
    factor, info = lapack.dpotrf(gram, lower=False, overwrite_a=True)
    if info == 0:
        precision, info = lapack.dpotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise ValueError(f"EASE's regularised Gram matrix is not positive definite "
                         f"(LAPACK info {info}); raise lambda")
    precision = np.triu(precision) + np.triu(precision, 1).T  # dpotri fills one triangle
    weights = precision / -np.diag(precision)
    weights[np.diag_indices_from(weights)] = 0.0
    return weights


def ease_scores(train: pd.DataFrame, es: EvaluationSet,
                regularization: float = DEFAULT_LAMBDA) -> np.ndarray:
    """float32 [queries, candidates]: each query user's EASE scores (0 for a user without
    train interactions)."""
    matrix, rows = interaction_matrix(train, es)
    weights = ease_weights(matrix, regularization)
    scores = np.zeros((len(rows), len(es.candidates)), np.float32)
    known = rows >= 0
    scores[known] = (matrix[rows[known]] @ weights).astype(np.float32)
    return scores


__all__ = ["DEFAULT_LAMBDA", "ease_scores", "ease_weights", "interaction_matrix"]
