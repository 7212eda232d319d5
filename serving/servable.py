"""One loaded version of a model: its signatures and how to run them.

Guarantees: signatures are described from the SavedModel's own ``SignatureDef``s (what TF
Serving reports); a request is checked against the signature before anything runs (missing,
extra or wrongly typed inputs are ``INVALID_ARGUMENT`` with TF Serving's wording); a
signature that does not exist is ``INVALID_ARGUMENT`` over REST and ``FAILED_PRECONDITION``
over gRPC, as in TF Serving. Calls are thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

import recsys  # noqa: F401  (Keras 2 before TensorFlow)
from serving.errors import Code, ServingError
from serving.json_codec import TensorSpecInfo

DEFAULT_SIGNATURE = "serving_default"
_INTERNAL = "__saved_model_init_op"


@dataclass(frozen=True)
class Signature:
    name: str
    inputs: dict[str, TensorSpecInfo]
    outputs: dict[str, TensorSpecInfo]


def _spec(info) -> TensorSpecInfo:
    import tensorflow as tf

    dtype = tf.dtypes.as_dtype(info.dtype)
    name = "string" if dtype == tf.string else dtype.name
    shape = None if info.tensor_shape.unknown_rank else tuple(d.size for d in
                                                              info.tensor_shape.dim)
    return TensorSpecInfo(name, shape)


def read_signature_defs(path: Path) -> dict:
    """The ``SignatureDef`` protos of the serving meta graph of the SavedModel at ``path``."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    graphs = [g for g in proto.meta_graphs if "serve" in g.meta_info_def.tags] or list(
        proto.meta_graphs)
    if not graphs:
        raise ServingError(Code.DATA_LOSS, f"{path}/saved_model.pb holds no meta graph")
    return {k: v for k, v in graphs[0].signature_def.items() if k != _INTERNAL}


class Servable:
    """Version ``version`` of model ``name``, loaded from ``path`` with tf.saved_model.load.

    Unless ``onnx`` is False, a ranker exported with an ONNX core
    (``assets.extra/rank_core.onnx``) runs its ``rank`` signature on ONNX Runtime
    (:mod:`recsys.model_contract.onnx_ranker`: the same outputs, in less than half
    TensorFlow's time), and a ScaNN retrieval model exported with an ONNX query tower
    (``assets.extra/query_core.onnx``) its ``retrieval`` and ``query_embedding`` signatures
    (:mod:`recsys.model_contract.onnx_retrieval`: the tower on ONNX Runtime, the same
    searcher); every other signature runs in TensorFlow."""

    def __init__(self, name: str, version: int, path: Path, onnx: bool = True):
        import tensorflow as tf

        self.name, self.version, self.path = name, version, Path(path)
        self.signature_defs = read_signature_defs(self.path)
        self._model = tf.saved_model.load(str(self.path))
        self.signatures = {
            key: Signature(key, {k: _spec(v) for k, v in sd.inputs.items()},
                           {k: _spec(v) for k, v in sd.outputs.items()})
            for key, sd in self.signature_defs.items()}
        self._functions = {key: self._model.signatures[key] for key in self.signatures}
        self._flat = {key: _FlatCall.of(fn) for key, fn in self._functions.items()}
        self._fast: dict[str, object] = {}  # signature -> run(inputs, wanted)
        self._onnx = None
        if onnx:
            from recsys.model_contract import onnx_retrieval
            from recsys.model_contract.onnx_ranker import OnnxRanker, has_onnx_core

            if has_onnx_core(self.path):
                self._onnx = OnnxRanker(self.path)
                for key in {"rank", DEFAULT_SIGNATURE} & set(self.signatures):
                    self._fast[key] = self._onnx.run
            elif onnx_retrieval.can_run(self.path, self._model) and "retrieval" in \
                    self.signatures:
                k = self.signatures["retrieval"].outputs["item_ids"].shape[-1]
                self._onnx = onnx_retrieval.OnnxRetrieval(self.path, self._model, k)
                for key in self._onnx.signatures & set(self.signatures):
                    self._fast[key] = _bound(self._onnx.run, key)

    @property
    def runtime(self) -> str:
        """``onnxruntime`` when the model's main signature runs on ONNX Runtime, else
        ``tensorflow``."""
        return "tensorflow" if self._onnx is None else "onnxruntime"

    def signature(self, name: str | None, api: str = "rest") -> Signature:
        key = name or DEFAULT_SIGNATURE
        if key not in self.signatures:
            if api == "grpc":
                raise ServingError(Code.FAILED_PRECONDITION,
                                   f'Serving signature key "{key}" not found.')
            raise ServingError(Code.INVALID_ARGUMENT,
                               f'Serving signature name: "{key}" not found in signature def')
        return self.signatures[key]

    def check(self, signature: Signature, inputs: Mapping[str, np.ndarray]) -> None:
        """Refuse inputs that do not fit ``signature`` (``INVALID_ARGUMENT``), as ``run``
        does: lets a batcher refuse one bad request before it joins others."""
        _check_inputs(signature, inputs)

    def run(self, signature: Signature, inputs: Mapping[str, np.ndarray],
            output_filter: tuple[str, ...] = (), checked: bool = False
            ) -> dict[str, np.ndarray]:
        """Run ``signature`` on ``inputs`` (already decoded arrays); ``checked``: the caller
        has already passed every part of ``inputs`` through ``check``."""
        import tensorflow as tf

        if not checked:
            _check_inputs(signature, inputs)
        for alias in output_filter:
            if alias not in signature.outputs:
                raise ServingError(Code.INVALID_ARGUMENT,
                                   f"output tensor alias not found in signature: {alias} Outputs "
                                   f"expected to be in the set {{{','.join(signature.outputs)}}}.")
        wanted = output_filter or tuple(signature.outputs)
        fast = self._fast.get(signature.name)
        if fast is not None:
            try:
                return fast(inputs, wanted)
            except (ValueError, KeyError) as exc:
                raise ServingError(Code.INVALID_ARGUMENT, str(exc).splitlines()[0]) from exc
        feed = {}
        for name, spec in signature.inputs.items():
            value = inputs[name]
            feed[name] = tf.constant(value, dtype=tf.string if spec.dtype == "string"
                                     else spec.dtype)
        flat = self._flat[signature.name]
        try:
            result = (flat(feed) if flat is not None
                      else self._functions[signature.name](**feed))
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            raise ServingError(Code.INVALID_ARGUMENT, message.strip().splitlines()[0]) from exc
        return {k: result[k].numpy() for k in wanted}


def _bound(run, signature: str):
    return lambda inputs, wanted: run(signature, inputs, wanted)


class _FlatCall:
    """A signature function called with its inputs already in flat order (the
    ``ConcreteFunction`` call without binding, casting and flattening a dict of inputs in
    Python on every call: 0.3 ms less per call of the retrieval signature, 0.25 ms of the
    ranker's). Gives what the function's own call gives (a test holds them equal)."""

    def __init__(self, fn, names: list[str]):
        self.fn, self.names, self.captured = fn, names, fn.captured_inputs

    @classmethod
    def of(cls, fn) -> "_FlatCall | None":
        """The flat call of ``fn``, or None where this TensorFlow's functions lack one."""
        import tensorflow as tf

        try:
            specs = tf.nest.flatten(fn.structured_input_signature)
            names = [spec.name for spec in specs]
            if not hasattr(fn, "_call_flat") or sorted(names) != sorted(
                    fn.structured_input_signature[1]):
                return None
            return cls(fn, names)
        except (AttributeError, TypeError, IndexError):
            return None

    def __call__(self, feed: Mapping[str, object]) -> dict:
        return self.fn._call_flat([feed[name] for name in self.names], self.captured)


def _check_inputs(signature: Signature, inputs: Mapping[str, np.ndarray]) -> None:
    expected, sent = set(signature.inputs), set(inputs)
    if expected != sent:
        extra, missing = sorted(sent - expected), sorted(expected - sent)
        if len(sent) == len(expected):
            raise ServingError(Code.INVALID_ARGUMENT,
                               f"input tensor alias not found in signature: {extra[0]}. Inputs "
                               f"expected to be in the set {{{','.join(signature.inputs)}}}.")
        raise ServingError(
            Code.INVALID_ARGUMENT,
            f"input size does not match signature: {len(sent)}!={len(expected)} "
            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(signature.inputs)}}}). "
            f"Sent extra: {{{','.join(extra)}}}. Missing but required: "
            f"{{{','.join(missing)}}}.")
    for name, spec in signature.inputs.items():
        value = np.asarray(inputs[name])
        if spec.shape is not None and value.ndim != len(spec.shape):
            raise ServingError(Code.INVALID_ARGUMENT,
                               f"input {name} must have rank {len(spec.shape)} (shape "
                               f"{list(spec.shape)}), got shape {list(value.shape)}")
        if spec.shape is not None:
            for want, got in zip(spec.shape, value.shape):
                if want != -1 and want != got:
                    raise ServingError(Code.INVALID_ARGUMENT,
                                       f"input {name} must have shape {list(spec.shape)}, got "
                                       f"{list(value.shape)}")
        if spec.dtype == "string":
            if value.dtype.kind not in "OSU":
                raise ServingError(Code.INVALID_ARGUMENT,
                                   f"Expects input {name} to be string but {value.dtype} is "
                                   "provided")
        elif value.dtype.kind in "OSU" or (value.dtype.kind == "f" and spec.dtype[0] in "iu") \
                or (value.dtype.kind == "b") != (spec.dtype == "bool"):
            raise ServingError(Code.INVALID_ARGUMENT,
                               f"Expects input {name} to be {spec.dtype} but {value.dtype} is "
                               "provided")


__all__ = ["Servable", "Signature", "DEFAULT_SIGNATURE", "read_signature_defs"]
