"""Embedding drift: are a window's query embeddings distributed like the reference's?

The maximum mean discrepancy (Gretton et al., JMLR 2012) with a Gaussian kernel whose width
is the median distance between the pooled points (the median heuristic), and its p-value by
a permutation test: the two samples are pooled and split at random ``permutations`` times,
and the p-value is the share of splits whose MMD is at least the observed one (counting the
observed split, so it is never 0). Samples larger than ``max_points`` per side are
subsampled (the kernel matrix is quadratic in the points).

Guarantees: the permutation test's level is exact: a window drawn from the reference's
distribution is flagged with probability at most ``alpha`` (the tests check it over seeded
repetitions); results are pure functions of the inputs and ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_POINTS = 300
PERMUTATIONS = 200


@dataclass(frozen=True)
class EmbeddingDrift:
    mmd2: float  # the biased estimate of MMD squared on the samples
    p_value: float
    alpha: float
    drift: bool
    reference_size: int
    current_size: int


def _squared_distances(x: np.ndarray) -> np.ndarray:
    norms = (x * x).sum(axis=1)
    return np.maximum(norms[:, None] + norms[None, :] - 2.0 * x @ x.T, 0.0)


def _mmd2(kernel: np.ndarray, first: np.ndarray) -> float:
    """MMD squared (biased) of the split ``first`` (a boolean mask) against the rest."""
    a, b = first, ~first
    return float(kernel[np.ix_(a, a)].mean() + kernel[np.ix_(b, b)].mean()
                 - 2.0 * kernel[np.ix_(a, b)].mean())


def embedding_drift(reference: np.ndarray, current: np.ndarray, alpha: float = 0.05,
                    permutations: int = PERMUTATIONS, max_points: int = MAX_POINTS,
                    seed: int = 0) -> EmbeddingDrift:
    """The permutation test of MMD between two ``(n, d)`` samples of embeddings."""
    reference, current = np.asarray(reference, float), np.asarray(current, float)
    if reference.ndim != 2 or current.ndim != 2 or reference.shape[1] != current.shape[1]:
        raise ValueError(f"embeddings must be two (n, d) arrays of one width, got "
                         f"{reference.shape} and {current.shape}")
    if len(reference) < 2 or len(current) < 2:
        raise ValueError(f"embedding drift needs at least 2 points on each side, got "
                         f"{len(reference)} and {len(current)}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    rng = np.random.default_rng(seed)
    if len(reference) > max_points:
        reference = reference[rng.choice(len(reference), max_points, replace=False)]
    if len(current) > max_points:
        current = current[rng.choice(len(current), max_points, replace=False)]
    pooled = np.vstack([reference, current])
    squared = _squared_distances(pooled)
    width = np.median(squared[np.triu_indices(len(pooled), k=1)])
    kernel = np.exp(-squared / max(width, 1e-12))
    first = np.zeros(len(pooled), dtype=bool)
    first[:len(reference)] = True
    observed = _mmd2(kernel, first)
    at_least = 1  # the observed split counts
    for _ in range(permutations):
        at_least += _mmd2(kernel, rng.permutation(first)) >= observed
    p_value = at_least / (permutations + 1)
    return EmbeddingDrift(observed, p_value, alpha, bool(p_value < alpha), len(reference),
                          len(current))


__all__ = ["EmbeddingDrift", "embedding_drift"]
