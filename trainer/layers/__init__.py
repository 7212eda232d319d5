"""Keras layers of the towers (Keras 2, shared with TensorFlow Recommenders)."""

from trainer.layers.history_pooling import HistoryPooling, fixed_width
from trainer.layers.lookup_embedding import LookupEmbedding
from trainer.layers.numeric_features import LogStandardize

__all__ = ["fixed_width", "HistoryPooling", "LookupEmbedding", "LogStandardize"]
