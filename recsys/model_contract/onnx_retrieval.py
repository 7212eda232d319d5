"""A ScaNN retrieval export's signatures without TensorFlow's per-op dispatch: the query tower
on ONNX Runtime (:mod:`recsys.model_contract.onnx_query`), then the export's own ScaNN
searcher, searched with that embedding through one handle held for the servable's life.

The SavedModel's ``retrieval`` signature runs the tower's ~440 small ops in TensorFlow and
re-creates the searcher's handle (``TensorsToScann``) on every call; here the tower is one
ONNX Runtime call and the search one ScaNN op.

Guarantees: the signature's outputs (``item_ids``, ``scores``, ``query_embedding``; the
``query_embedding`` signature's ``embedding``) from the same searcher with the same search
parameters (the export's leaves and re-scoring, frozen in its config); the embedding to
float32 rounding, so results agree except where two items' scores are that close (the
export checks it on its check queries, tests hold it); fewer than ``k`` results padded with
``""`` and ``-inf`` as the signature pads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from recsys.model_contract.onnx_query import OnnxQueryTower, has_query_core

RETRIEVAL_SIGNATURES = ("retrieval", "serving_default")
EMBEDDING_SIGNATURE = "query_embedding"


def has_scann_index(loaded) -> bool:
    """Whether a loaded retrieval SavedModel holds a TFRS ScaNN index (not brute force)."""
    index = getattr(loaded, "index", None)
    return index is not None and hasattr(index, "_serialized_searcher") and hasattr(
        index, "_identifiers")


def can_run(path: Path, loaded) -> bool:
    """Whether the export at ``path`` (loaded as ``loaded``) can run here."""
    return has_query_core(path) and has_scann_index(loaded)


class OnnxRetrieval:
    """The retrieval export at ``path``, loaded as ``loaded``, with ``k`` results a query."""

    def __init__(self, path: Path, loaded, k: int):
        import scann  # noqa: F401  (registers the ScaNN ops)
        import tensorflow as tf
        from scann.scann_ops.py import scann_ops

        self.tower = OnnxQueryTower(path)
        self.k = k
        index = loaded.index
        self._handle = index._serialized_searcher.recreate_handle()
        self._identifiers = index._identifiers.numpy()
        self._search, self._constant = scann_ops.scann_search_batched, tf.constant
        self.signatures = frozenset((*RETRIEVAL_SIGNATURES, EMBEDDING_SIGNATURE))

    def run(self, signature: str, inputs: Mapping[str, np.ndarray],
            wanted: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The ``wanted`` outputs of ``signature`` (one of :attr:`signatures`)."""
        embedding = self.tower.embed(inputs)
        if signature == EMBEDDING_SIGNATURE:
            return {"embedding": embedding}
        ids, scores = self.search(embedding)
        result = {"item_ids": ids, "scores": scores, "query_embedding": embedding}
        return {name: result[name] for name in wanted}

    def search(self, embedding: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids object [B, k], scores float32 [B, k]) of the ``k`` best items per row."""
        query = self._constant(np.asarray(embedding, np.float32))
        found = self._search(self._handle, query, self.k, -1, -1, False)
        rows, scores = found.indices.numpy(), found.distances.numpy()
        ids = self._identifiers[rows]
        missing = self.k - rows.shape[1]
        if missing > 0:  # the searched leaves held fewer than k items
            ids = np.pad(ids, [(0, 0), (0, missing)], constant_values=b"")
            scores = np.pad(scores, [(0, 0), (0, missing)], constant_values=-np.inf)
        return ids, scores.astype(np.float32, copy=False)


__all__ = ["OnnxRetrieval", "can_run", "has_scann_index", "RETRIEVAL_SIGNATURES",
           "EMBEDDING_SIGNATURE"]
