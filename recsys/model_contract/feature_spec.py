"""The raw inputs of the two towers: names, dtypes and shapes, declared once.

The same specs type the training arrays, the Keras inputs and the exported signatures, so a
client of the SavedModel sends exactly what the model was trained on. Missing values are
encoded, never dropped: ``""`` for strings, NaN for numbers; lists are padded with ``""`` (ids)
or 0 (gaps) to a fixed width, and a NaN inside a numeric list counts as 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys.model_contract.retrieval_config import (
    CONTEXT_CATEGORICAL_FEATURES,
    RetrievalModelConfig,
)


@dataclass(frozen=True)
class InputSpec:
    """One input: ``width`` is None for a scalar per example, else the list length."""

    name: str
    dtype: str  # "string", "float32" or "int64"
    width: int | None = None

    @property
    def numpy_dtype(self) -> type:
        return {"string": object, "float32": np.float32, "int64": np.int64}[self.dtype]

    @property
    def missing(self):
        """The value of a missing scalar."""
        return {"string": "", "float32": np.nan, "int64": 0}[self.dtype]

    @property
    def pad(self):
        """The value that fills a list up to ``width``."""
        return {"string": "", "float32": 0.0, "int64": 0}[self.dtype]

    def tensor_spec(self):
        import tensorflow as tf

        shape = [None] if self.width is None else [None, None]
        return tf.TensorSpec(shape, getattr(tf, self.dtype), name=self.name)


def query_inputs(cfg: RetrievalModelConfig) -> tuple[InputSpec, ...]:
    """The query tower's inputs: who, what they engaged with recently, and the request context.
    History lists are most recent first; ``history_gaps_s`` are seconds between each history
    item and the request."""
    h = cfg.history_length
    return (
        InputSpec("user_id", "string"),
        InputSpec("history_item_ids", "string", h),
        InputSpec("history_categories", "string", h),
        InputSpec("history_gaps_s", "float32", h),
        InputSpec("hour_of_day", "int64"),
        InputSpec("day_of_week", "int64"),
        *(InputSpec(name, "string") for name in CONTEXT_CATEGORICAL_FEATURES),
        *(InputSpec(name, "float32") for name in cfg.user_numeric_features),
        *(InputSpec(name, "string") for name in cfg.user_categorical_features),
    )


def candidate_inputs(cfg: RetrievalModelConfig) -> tuple[InputSpec, ...]:
    """The candidate tower's inputs: the item id and its content. ``item_age_days`` is the
    item's age at the time its embedding is used (the request, or the index build)."""
    return (
        InputSpec("item_id", "string"),
        InputSpec("item_category", "string"),
        InputSpec("item_language", "string"),
        InputSpec("item_tags", "string", cfg.max_tags),
        InputSpec("item_age_days", "float32"),
    )


__all__ = ["InputSpec", "query_inputs", "candidate_inputs"]
