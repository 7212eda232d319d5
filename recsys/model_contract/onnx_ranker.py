"""The ranker's ``rank`` signature on ONNX Runtime: string lookups in NumPy, the numeric core
(exported beside the SavedModel as ``assets.extra/rank_core.onnx``) in ONNX Runtime.

Guarantees: the outputs of the SavedModel's ``rank`` signature (``click``, ``watch``,
``score``) to float32 rounding (the export checks 1e-4 on its check rows; tests hold a
request's order); one intra-op thread and one inter-op thread per session, as the service
configures TensorFlow; a bad input is a ``ValueError`` naming it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np

from recsys.model_contract.fusion import fuse
from recsys.model_contract.onnx_session import OnnxCore
from recsys.model_contract.ranker_encoding import CORE_FILE, RankerEncoding
from recsys.model_contract.ranker_inputs import RETRIEVAL_SCORE


def has_onnx_core(path: Path) -> bool:
    """Whether the SavedModel at ``path`` was exported with an ONNX core."""
    return (Path(path) / "assets.extra" / CORE_FILE).is_file()


class OnnxRanker:
    """``rank`` of the export at ``path`` (a SavedModel version directory)."""

    def __init__(self, path: Path, threads: int = 1):
        extra = Path(path) / "assets.extra"
        self.encoding = RankerEncoding.read(extra)
        manifest = json.loads((extra / "manifest.json").read_text())
        self.retrieval_weight = float(manifest["model_config"]["retrieval_weight"])
        self.core = OnnxCore(extra / CORE_FILE, threads)

    def run(self, inputs: Mapping[str, np.ndarray],
            wanted: tuple[str, ...] = ("click", "watch", "score")) -> dict[str, np.ndarray]:
        """The ``wanted`` outputs (``score`` is fused only when asked for: the service asks
        for ``click`` and fuses per request itself)."""
        result = self.core.run(self.encoding.encode(inputs))
        if "score" in wanted:
            retrieval = np.asarray(inputs[RETRIEVAL_SCORE], dtype=np.float32)
            result["score"] = fuse(result["click"], retrieval,
                                   self.retrieval_weight).astype(np.float32)
        return {name: result[name] for name in wanted}


__all__ = ["OnnxRanker", "has_onnx_core"]
