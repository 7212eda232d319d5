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
from recsys.model_contract.ranker_encoding import CORE_FILE, RankerEncoding
from recsys.model_contract.ranker_inputs import RETRIEVAL_SCORE

_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64,
                "tensor(int32)": np.int32, "tensor(bool)": np.bool_,
                "tensor(double)": np.float64}


def has_onnx_core(path: Path) -> bool:
    """Whether the SavedModel at ``path`` was exported with an ONNX core."""
    return (Path(path) / "assets.extra" / CORE_FILE).is_file()


class OnnxRanker:
    """``rank`` of the export at ``path`` (a SavedModel version directory)."""

    def __init__(self, path: Path, threads: int = 1):
        import onnxruntime as ort

        extra = Path(path) / "assets.extra"
        self.encoding = RankerEncoding.read(extra)
        manifest = json.loads((extra / "manifest.json").read_text())
        self.retrieval_weight = float(manifest["model_config"]["retrieval_weight"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(extra / CORE_FILE), options,
                                            providers=["CPUExecutionProvider"])
        self.inputs = [(i.name, i.name.split(":")[0], _NUMPY_TYPES[i.type])
                       for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, inputs: Mapping[str, np.ndarray],
            wanted: tuple[str, ...] = ("click", "watch", "score")) -> dict[str, np.ndarray]:
        """The ``wanted`` outputs (``score`` is fused only when asked for: the service asks
        for ``click`` and fuses per request itself)."""
        encoded = self.encoding.encode(inputs)
        feed = {name: np.ascontiguousarray(encoded[key], dtype=dtype)
                for name, key, dtype in self.inputs}
        result = dict(zip(self.outputs, self.session.run(self.outputs, feed)))
        if "score" in wanted:
            retrieval = np.asarray(inputs[RETRIEVAL_SCORE], dtype=np.float32)
            result["score"] = fuse(result["click"], retrieval,
                                   self.retrieval_weight).astype(np.float32)
        return {name: result[name] for name in wanted}


__all__ = ["OnnxRanker", "has_onnx_core"]
