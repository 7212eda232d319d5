"""Scoring the evaluation set with a model and turning rankings into the protocol's metrics.

Guarantees: every model is ranked over the same candidates with the same exclusions; the
candidate tower sees each item's age at the user's request time (rounded to
``age_resolution_days``), as an index built at that time would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from recsys.evaluation import DEFAULT_KS, ranking_metrics, segment_metrics, top_k
from recsys.evaluation.segments import recent_items, short_history_users
from recsys.model_contract.arrays import US_PER_DAY, to_arrays, with_item_age
from recsys.model_contract.feature_spec import candidate_inputs, query_inputs
from trainer.evaluation_set import EvaluationSet
from trainer.tower import embed


@dataclass(frozen=True)
class Segments:
    """``short_history``: users with at most this many train positives; ``recent_days``: items
    created at most this many days before the end of the train split."""

    short_history: int = 30
    recent_days: float = 365.0


def popularity_scores(es: EvaluationSet) -> np.ndarray:
    """Most-popular baseline: every user gets the train counts."""
    return np.broadcast_to(es.train_counts.astype(np.float32),
                           (len(es.queries), len(es.candidates)))


def candidate_vectors_by_age(model, es: EvaluationSet, age_resolution_days: float = 30.0
                             ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(query rows, candidate embeddings [candidates, dim]) for each group of queries whose
    request times fall in one bucket of ``age_resolution_days``: the candidates' ages are
    taken at the bucket's start. The candidates' arrays are built and their strings looked
    up once; each bucket only runs the tower's numeric core on its ages."""
    from trainer.retrieval_model import encode_arrays

    step = int(age_resolution_days * US_PER_DAY)
    buckets = (es.request_times_us // step) * step
    if not len(buckets):
        return
    arrays = to_arrays(with_item_age(es.candidates, int(buckets[0])),
                       candidate_inputs(model.cfg), "candidates")
    tower = model.candidate_tower
    encoded = encode_arrays(tower, arrays)
    for bucket in np.unique(buckets):
        ages = with_item_age(es.candidates[["item_created_at_s"]], int(bucket))
        encoded["item_age_days"] = ages["item_age_days"].to_numpy(np.float32)
        yield np.flatnonzero(buckets == bucket), embed(tower.core, encoded)


def _query_vectors(model, es: EvaluationSet) -> np.ndarray:
    return embed(model.query_tower, to_arrays(es.queries, query_inputs(model.cfg),
                                              "test queries"))


def two_tower_scores(model, es: EvaluationSet, age_resolution_days: float = 30.0) -> np.ndarray:
    """Dot products of each user's query embedding with every candidate embedding."""
    queries = _query_vectors(model, es)
    scores = np.empty((len(es.queries), len(es.candidates)), dtype=np.float32)
    for rows, items in candidate_vectors_by_age(model, es, age_resolution_days):
        scores[rows] = queries[rows] @ items.T
    return scores


def two_tower_top_k(model, es: EvaluationSet, k: int, age_resolution_days: float = 30.0,
                    max_cells: int = 1 << 26) -> tuple[np.ndarray, np.ndarray]:
    """(ranked int64 [users, k], scores float32 [users, k]): exactly
    ``top_k(two_tower_scores(model, es), k, es.exclude)`` and those candidates' scores (NaN
    where a row is padded with -1), computed for at most ``max_cells`` user x candidate scores
    at a time, so memory stays bounded whatever the users and candidates (a full matrix of
    78K users x 500K items is 150 GB)."""
    queries = _query_vectors(model, es)
    chunk = max(1, max_cells // max(len(es.candidates), 1))
    ranked = np.full((len(es.queries), k), -1, np.int64)
    scores = np.full((len(es.queries), k), np.nan, np.float32)
    for rows, items in candidate_vectors_by_age(model, es, age_resolution_days):
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            block = queries[part] @ items.T
            found = top_k(block, k, [es.exclude[r] for r in part])
            ranked[part] = found
            scores[part] = np.where(found >= 0, np.take_along_axis(
                block, np.maximum(found, 0), axis=1), np.nan)
    return ranked, scores


def evaluate_scores(scores: np.ndarray, es: EvaluationSet, ks: Sequence[int] = DEFAULT_KS,
                    segments: Segments = Segments()) -> dict:
    """Overall metrics plus per segment, as ``{"overall": {...}, "segments": {...}}``."""
    return evaluate_ranked(top_k(scores, max(ks), es.exclude), es, ks, segments)


def evaluate_ranked(ranked: np.ndarray, es: EvaluationSet, ks: Sequence[int] = DEFAULT_KS,
                    segments: Segments = Segments()) -> dict:
    """:func:`evaluate_scores` for ready rankings: int [users, >= max(ks)] candidate indices
    (-1 pads), best first, the user's excluded items already left out."""
    overall = ranking_metrics(ranked, es.relevant, len(es.candidates), ks)
    reference_s = int(es.request_times_us.max() // 1_000_000) if len(es.queries) else 0
    created = es.candidates["item_created_at_s"].to_numpy(np.float64)
    by_segment = segment_metrics(
        ranked, es.relevant, len(es.candidates),
        user_segments={f"users with <= {segments.short_history} train interactions":
                       short_history_users(es.history_lengths, segments.short_history)},
        item_segments={f"items created in the last {segments.recent_days:g} days":
                       recent_items(created, reference_s,
                                    segments.recent_days)},
        ks=ks)
    return {"overall": overall, "segments": by_segment}


__all__ = ["DEFAULT_KS", "Segments", "embed", "candidate_vectors_by_age", "popularity_scores",
           "two_tower_scores",
           "two_tower_top_k", "evaluate_scores", "evaluate_ranked"]
