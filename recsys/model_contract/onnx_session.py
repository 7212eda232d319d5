"""An exported numeric core (an ONNX graph beside a SavedModel) on ONNX Runtime.

Guarantees: one intra-op and one inter-op thread per session unless told otherwise (as the
service configures TensorFlow); inputs are fed by the graph's own names and dtypes (a
missing input is a ``KeyError`` naming it); outputs come back by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64,
                "tensor(int32)": np.int32, "tensor(bool)": np.bool_,
                "tensor(double)": np.float64}


class OnnxCore:
    """The ONNX graph at ``path`` in an ONNX Runtime session on the CPU."""

    def __init__(self, path: Path, threads: int = 1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])
        self.inputs = [(i.name, i.name.split(":")[0], _NUMPY_TYPES[i.type])
                       for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, encoded: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every output, by name, for the encoded inputs (keyed by input name)."""
        feed = {name: np.ascontiguousarray(encoded[key], dtype=dtype)
                for name, key, dtype in self.inputs}
        return dict(zip(self.outputs, self.session.run(self.outputs, feed)))


__all__ = ["OnnxCore"]
