"""Keras layers of the towers (Keras 2, shared with TensorFlow Recommenders)."""

from trainer.layers.history_pooling import HistoryPooling
from trainer.layers.lookup_embedding import LookupEmbedding
from trainer.layers.numeric_features import LogStandardize

__all__ = ["HistoryPooling", "LookupEmbedding", "LogStandardize"]
