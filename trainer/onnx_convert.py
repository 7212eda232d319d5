"""A model's numeric core as an ONNX graph, for ONNX Runtime in the service.

TensorFlow runs a small model's hundreds of ops at several microseconds each; ONNX Runtime
runs the same graph in a fraction of that on this machine's CPU. Only numeric cores convert:
string lookups have no ONNX Runtime kernels, so the service does them in NumPy
(:mod:`recsys.model_contract.string_lookup`).

Guarantees: the graph holds the whole core, weights and captured constants included (no
input but the encoded features); the conversion is tf2onnx's, with ``Log1p`` written as
``Log(1 + x)`` (ONNX has no Log1p); a graph with any other input is refused, naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
import tensorflow as tf

from recsys.errors import RecsysError
from recsys.model_contract.feature_spec import InputSpec

OPSET = 17


class OnnxConversionError(RecsysError):
    """A model's core did not convert to ONNX as expected."""


_registered = []


def _register_log1p() -> None:
    if _registered:
        return
    _registered.append(True)
    from tf2onnx.handler import tf_op
    from tf2onnx.utils import make_name

    @tf_op("Log1p")
    class Log1p:  # noqa: F841 - registered by the decorator
        @classmethod
        def version_1(cls, ctx, node, **kwargs):
            one = ctx.make_const(make_name("one"), np.array(1.0, dtype=np.float32))
            shifted = ctx.make_node("Add", [node.input[0], one.output[0]])
            ctx.replace_inputs(node, [shifted.output[0]])
            node.type = "Log"


def example_inputs(specs: Iterable[InputSpec]) -> dict[str, tf.Tensor]:
    """One row of ``specs``' inputs, every value missing (lists at their full width)."""
    batch = {}
    for spec in specs:
        shape = [1] if spec.width is None else [1, spec.width]
        batch[spec.name] = tf.fill(shape, tf.constant(spec.pad if spec.width else spec.missing,
                                                      dtype=getattr(tf, spec.dtype)))
    return batch


def spec_of(encoded: Mapping[str, tf.Tensor]) -> dict[str, tf.TensorSpec]:
    """Input specs (names, dtypes, trailing shapes, any batch size) of an encoded batch."""
    return {name: tf.TensorSpec([None, *value.shape[1:]], value.dtype, name=name)
            for name, value in encoded.items()}


def write_onnx(core: Callable[[Mapping[str, tf.Tensor]], object],
               spec: Mapping[str, tf.TensorSpec], path: Path, what: str,
               captured: Mapping[tuple, np.ndarray] | None = None) -> Path:
    """Convert ``core`` (a function of the encoded features, inference mode) and write it to
    ``path``. ``captured``: constants the function captures (not variables), by shape; they
    become the graph's initializers."""
    import onnx
    import tf2onnx
    from onnx import numpy_helper

    _register_log1p()
    function = tf.function(core, input_signature=[dict(spec)])
    proto, _ = tf2onnx.convert.from_function(function, input_signature=[dict(spec)],
                                             opset=OPSET)
    graph = proto.graph
    for graph_input in list(graph.input):
        name = graph_input.name.split(":")[0]
        if name in spec:
            continue
        dims = tuple(d.dim_value for d in graph_input.type.tensor_type.shape.dim)
        value = (captured or {}).get(dims)
        if value is None:
            raise OnnxConversionError(f"the {what}'s ONNX core has an unexpected input "
                                      f"{graph_input.name!r} of shape {list(dims)}")
        graph.input.remove(graph_input)
        graph.initializer.append(numpy_helper.from_array(value, graph_input.name))
    onnx.checker.check_model(proto)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(proto.SerializeToString())
    return path


__all__ = ["write_onnx", "spec_of", "example_inputs", "OnnxConversionError", "OPSET"]
