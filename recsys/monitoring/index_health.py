"""Live health of an approximate index: recall@k of what the served ScaNN index returns against
exact search over the same item embeddings, on a sample of real queries.

The exact side is the same version's ``retrieval_portable`` (brute force over the same item
embeddings, exported with every retrieval version), so the check needs nothing but the two
models' answers to the same query rows: the ANN's top ids and the exact top ids with scores.

Recall is counted by score (as the export's tuning counts it): a returned item is a hit when
its exact score is at least the exact k-th best minus ``TIE_EPSILON``, so items tied with the
exact ones (items sharing an embedding) are not misses. Its exact score is read from the exact
answer's list; an item absent from that list scores below the k-th by construction.

Guarantees: ``index_health`` is a pure function of the answers; the recall is in [0, 1]; it is
1 when the ANN returns the exact top k, whatever the order or the ties.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# A result this close to the exact k-th best score is a hit (a few float32 ulps at a score of
# 1; on unit-norm embeddings neighbours' scores differ by about 1e-3: see trainer/export.py).
TIE_EPSILON = 1e-5


def tie_aware_recall(found_scores: np.ndarray, exact_scores: np.ndarray, k: int = 10) -> float:
    """Recall@k by score: the share of the first k found items whose exact score reaches the
    exact k-th best minus ``TIE_EPSILON``.

    ``found_scores``: [queries, >= k] exact scores of the items the index returned, in its
    order (-inf for padding or unknown); ``exact_scores``: [queries, >= k] the exact top
    scores, best first."""
    width = min(k, exact_scores.shape[1])
    bar = exact_scores[:, width - 1:width] - TIE_EPSILON
    return float(np.mean(found_scores[:, :width] >= bar))


@dataclass(frozen=True)
class IndexHealth:
    """Attributes:
        recall: recall@k by score over the queries.
        id_recall: the share of the exact top-k ids the index returned (ties count as
            misses: a lower bound).
        worst_query: the lowest per-query recall.
        queries: the queries checked.
        threshold: the recall below which the index is unhealthy.
        version: the version that answered (0 when unknown).
        k: the depth checked (the export tunes its index at the depth a request retrieves).
    """

    recall: float
    id_recall: float
    worst_query: float
    queries: int
    threshold: float
    version: int = 0
    k: int = 10

    @property
    def healthy(self) -> bool:
        return self.recall >= self.threshold

    def to_dict(self) -> dict:
        return {**asdict(self), "healthy": self.healthy}


def index_health(found_ids: np.ndarray, exact_ids: np.ndarray, exact_scores: np.ndarray,
                 threshold: float, version: int = 0, k: int = 10) -> IndexHealth:
    """Recall@``k`` by score. ``found_ids`` [queries, >= k]: the ANN index's answers;
    ``exact_ids`` and ``exact_scores`` [queries, >= k]: exact search's, best first (longer
    lists give more returned items their exact score). Empty ids are padding."""
    found_ids, exact_ids = np.asarray(found_ids), np.asarray(exact_ids)
    exact_scores = np.asarray(exact_scores, dtype=np.float64)
    if found_ids.ndim != 2 or exact_ids.shape != exact_scores.shape or \
            len(found_ids) != len(exact_ids) or len(found_ids) == 0:
        raise ValueError(f"answers must be [queries, k] for the same queries, got found "
                         f"{found_ids.shape}, exact {exact_ids.shape} / {exact_scores.shape}")
    width = min(k, exact_ids.shape[1], found_ids.shape[1])
    found_scores = np.full((len(found_ids), width), -np.inf)
    id_hits = 0
    for q, (found, ids, scores) in enumerate(zip(found_ids[:, :width], exact_ids,
                                                  exact_scores)):
        known = {_text(i): s for i, s in zip(ids, scores) if _text(i)}
        found_scores[q] = [known.get(_text(i), -np.inf) for i in found]
        id_hits += len({_text(i) for i in found if _text(i)}
                       & {_text(i) for i in ids[:width] if _text(i)})
    bar = exact_scores[:, width - 1:width] - TIE_EPSILON
    per_query = np.mean(found_scores >= bar, axis=1)  # what tie_aware_recall averages
    return IndexHealth(recall=float(per_query.mean()),
                       id_recall=id_hits / (width * len(found_ids)),
                       worst_query=float(per_query.min()), queries=len(found_ids),
                       threshold=float(threshold), version=int(version), k=width)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["IndexHealth", "index_health", "tie_aware_recall", "TIE_EPSILON"]
