"""Score fusion: the ranker's click logit and the two-tower score, each standardised over one
request's candidates, added with a weight (``RankerConfig.retrieval_weight``). This is the
NumPy side, which the service applies per request; ``trainer.ranking.fusion.fuse_tf`` is the
same inside the exported ``rank`` signature.

The ranker reads the two-tower score as a feature, but learns how far to trust it from the
stacking model's out-of-sample scores; the deployed two-tower model is trained on more data,
so its score deserves more weight than the ranker learned. Fusion gives it that weight.

Guarantees: a list's order depends only on its own candidates; non-finite two-tower scores
(candidates from other sources, padding) count as the list's lowest finite score; a list
whose scores are all equal adds nothing; NumPy and TensorFlow versions agree.
"""

from __future__ import annotations

import numpy as np

EPSILON = 1e-6


def _standardised(x: np.ndarray, axis: int) -> np.ndarray:
    return (x - x.mean(axis=axis, keepdims=True)) / (x.std(axis=axis, keepdims=True) + EPSILON)


def _finite_or_lowest(x: np.ndarray, axis: int) -> np.ndarray:
    finite = np.isfinite(x)
    lowest = np.where(finite, x, np.inf).min(axis=axis, keepdims=True)
    lowest = np.where(np.isfinite(lowest), lowest, 0.0)
    return np.where(finite, x, lowest)


def fuse(click: np.ndarray, retrieval: np.ndarray, weight: float, axis: int = -1) -> np.ndarray:
    """Fused scores of lists along ``axis`` (click logits and two-tower scores, same shape)."""
    click = np.asarray(click, dtype=np.float64)
    if weight == 0:
        return click
    retrieval = _finite_or_lowest(np.asarray(retrieval, dtype=np.float64), axis)
    return _standardised(click, axis) + weight * _standardised(retrieval, axis)


__all__ = ["fuse", "EPSILON"]
