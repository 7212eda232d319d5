"""Top-k candidates of many queries from the two-tower model, by exact search in chunks.

Guarantees: the same scores the exported ``retrieval_portable`` model computes (dot products
of the towers' unit vectors); ranking ties are broken by the lower candidate index; excluded
candidates never appear; memory stays at ``chunk`` x candidates scores at a time.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from recsys.evaluation import top_k


def top_candidates(query_embeddings: np.ndarray, candidate_embeddings: np.ndarray, k: int,
                   exclude: Sequence[np.ndarray] | None = None,
                   chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(indices int64 [Q, k], scores float32 [Q, k]) of the best candidates per query; -1 and
    -inf pad rows with fewer than k candidates left after the exclusions."""
    if query_embeddings.ndim != 2 or candidate_embeddings.ndim != 2:
        raise ValueError("embeddings must be 2-D arrays")
    if query_embeddings.shape[1] != candidate_embeddings.shape[1]:
        raise ValueError(f"query and candidate embeddings differ in size: "
                         f"{query_embeddings.shape[1]} != {candidate_embeddings.shape[1]}")
    k = min(k, len(candidate_embeddings))
    indices = np.empty((len(query_embeddings), k), dtype=np.int64)
    scores = np.empty((len(query_embeddings), k), dtype=np.float32)
    for start in range(0, len(query_embeddings), chunk):
        block = query_embeddings[start:start + chunk] @ candidate_embeddings.T
        excluded = None if exclude is None else exclude[start:start + chunk]
        found = top_k(block, k, excluded)
        indices[start:start + chunk] = found
        picked = np.take_along_axis(block, np.maximum(found, 0), axis=1)
        scores[start:start + chunk] = np.where(found >= 0, picked, -np.inf)
    return indices, scores


__all__ = ["top_candidates"]
