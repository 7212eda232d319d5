"""The ranker's raw inputs, declared once (training arrays, Keras inputs, the ``rank``
signature)."""

from __future__ import annotations

from recsys.model_contract.feature_spec import InputSpec
from recsys.model_contract.ranker_config import RankerConfig
from recsys.model_contract.retrieval_config import CONTEXT_CATEGORICAL_FEATURES

RETRIEVAL_SCORE = "retrieval_score"  # the two-tower model's score of (query, candidate)


def ranker_inputs(cfg: RankerConfig, max_tags: int = 10) -> tuple[InputSpec, ...]:
    h = cfg.history_length
    return (
        InputSpec("history_item_ids", "string", h),
        InputSpec("history_categories", "string", h),
        InputSpec("history_gaps_s", "float32", h),
        InputSpec("item_id", "string"),
        InputSpec("item_category", "string"),
        InputSpec("item_tags", "string", max_tags),
        InputSpec("item_age_days", "float32"),
        InputSpec("hour_of_day", "int64"),
        InputSpec("day_of_week", "int64"),
        *(InputSpec(name, "string") for name in CONTEXT_CATEGORICAL_FEATURES),
        *(InputSpec(name, "float32") for name in cfg.item_numeric_features),
        *(InputSpec(name, "float32") for name in cfg.user_numeric_features),
        InputSpec(RETRIEVAL_SCORE, "float32"),  # NaN for candidates from other sources
    )


__all__ = ["ranker_inputs", "RETRIEVAL_SCORE"]
