"""The query tower on ONNX Runtime: string lookups in NumPy
(:mod:`recsys.model_contract.query_encoding`), the numeric core (exported beside the
retrieval SavedModel as ``assets.extra/query_core.onnx``) in ONNX Runtime.

Guarantees: the query embedding of the SavedModel's ``query_embedding`` signature to float32
rounding (the export checks 1e-4 on its check queries); a bad input is a ``ValueError`` or
``KeyError`` naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from recsys.model_contract.onnx_session import OnnxCore
from recsys.model_contract.query_encoding import QUERY_CORE_FILE, QueryEncoding


def has_query_core(path: Path) -> bool:
    """Whether the retrieval SavedModel at ``path`` was exported with an ONNX query core."""
    return (Path(path) / "assets.extra" / QUERY_CORE_FILE).is_file()


class OnnxQueryTower:
    """The query tower of the retrieval export at ``path`` (a SavedModel version directory)."""

    def __init__(self, path: Path, threads: int = 1):
        extra = Path(path) / "assets.extra"
        self.encoding = QueryEncoding.read(extra)
        self.core = OnnxCore(extra / QUERY_CORE_FILE, threads)
        if len(self.core.outputs) != 1:
            raise ValueError(f"{extra / QUERY_CORE_FILE} has {len(self.core.outputs)} "
                             "outputs; a query core has one, the embedding")

    def embed(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """float32 [B, d] unit-length query embeddings."""
        (embedding,) = self.core.run(self.encoding.encode(inputs)).values()
        return embedding


__all__ = ["OnnxQueryTower", "has_query_core"]
