"""Offline evaluation under the protocol of shared/EVALUATION.md (v1): exact top-k ranking,
Recall/NDCG/MAP/coverage at K, and the same metrics on user and item segments.

Pure NumPy: nothing here imports TensorFlow, so evaluation runs in any process.
"""

from recsys.evaluation.metrics import (
    DEFAULT_KS,
    METRIC_NAMES,
    average_metrics,
    catalog_coverage,
    per_user_metrics,
    ranking_metrics,
)
from recsys.evaluation.ranking import top_k
from recsys.evaluation.segments import recent_items, segment_metrics, short_history_users

__all__ = [
    "DEFAULT_KS",
    "METRIC_NAMES",
    "average_metrics",
    "catalog_coverage",
    "per_user_metrics",
    "ranking_metrics",
    "recent_items",
    "segment_metrics",
    "short_history_users",
    "top_k",
]
