"""Which ops a SavedModel needs, read from its protos without loading it.

A SavedModel that contains the TFRS ScaNN layer uses the custom ops ``Scann>TensorsToScann`` and
``Scann>ScannSearchBatched``: a Python process can load it only after ``import scann``, and stock
TensorFlow Serving cannot load it at all (see ``ENGINEERING.md`` section 2). This module tells the
two kinds of export apart by reading ``<path>/saved_model.pb``.

Guarantees:

* The model is never loaded or executed: only the ``SavedModel`` proto is parsed, so inspection
  works in a process that has not imported (and will not import) ``scann``, and it imports
  neither ``scann`` nor ``tensorflow_recommenders``.
* ``ops`` lists every op type used by the nodes of every meta graph's ``graph_def`` and of every
  function in its library (reachable or not, because loading imports the whole library). Calls
  of library functions by name are not ops; their bodies are inspected instead.
* An op is custom if its name has a namespace (``Namespace>Op``) or TensorFlow's op registry in
  this process does not know it. The namespace rule makes the answer the same whether or not the
  process imported ``scann`` (which registers the Scann ops).
* Missing paths, a missing ``saved_model.pb`` and files that are not SavedModel protos raise
  :class:`SavedModelError`, whose message names the path and the problem.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from google.protobuf import message as _proto_message
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow.python.framework import dtypes, op_def_registry

from recsys.errors import RecsysError

__all__ = [
    "REQUIRED_IMPORTS",
    "SavedModelError",
    "SavedModelReport",
    "SignatureInfo",
    "TensorInfo",
    "format_report",
    "inspect_saved_model",
]

#: Python module whose import registers the ops of each known custom-op namespace.
REQUIRED_IMPORTS: Mapping[str, str] = types.MappingProxyType({"Scann": "scann"})

_NAMESPACE_SEPARATOR = ">"
_SAVED_MODEL_FILE = "saved_model.pb"
_SERVING_TAG = "serve"


class SavedModelError(RecsysError):
    """A SavedModel directory is missing, incomplete or not a SavedModel."""


class TensorInfo(NamedTuple):
    """One input or output of a signature.

    Attributes:
        dtype: TensorFlow dtype name, e.g. ``"float32"`` or ``"string"``.
        shape: Dimensions with ``-1`` for an unknown size, e.g. ``(-1, 4)``; ``()`` for a scalar;
            ``None`` when even the rank is unknown (outputs of custom ops often are).
    """

    dtype: str
    shape: tuple[int, ...] | None


class SignatureInfo(NamedTuple):
    """The inputs and outputs of one signature, each keyed by its name in the signature."""

    inputs: Mapping[str, TensorInfo]
    outputs: Mapping[str, TensorInfo]


@dataclass(frozen=True)
class SavedModelReport:
    """What a SavedModel needs from the process that loads it.

    Attributes:
        path: The SavedModel directory.
        ops: Sorted op types used anywhere in the model.
        custom_ops: Sorted subset of ``ops`` that stock TensorFlow does not register.
        namespaces: Sorted namespaces of the namespaced custom ops, e.g. ``("Scann",)``.
        signatures: Signature name -> :class:`SignatureInfo`, from the ``serve``-tagged meta
            graph (else the first one); internal signatures such as ``__saved_model_init_op``
            are left out.
    """

    path: Path
    ops: tuple[str, ...]
    custom_ops: tuple[str, ...]
    namespaces: tuple[str, ...]
    signatures: Mapping[str, SignatureInfo]

    @property
    def stock_serving_loadable(self) -> bool:
        """True when stock TensorFlow (and TF Serving) has every op the model uses."""
        return not self.custom_ops

    @property
    def required_imports(self) -> Mapping[str, str]:
        """Namespace -> Python module to import before loading, for the known namespaces."""
        return {ns: REQUIRED_IMPORTS[ns] for ns in self.namespaces if ns in REQUIRED_IMPORTS}


def inspect_saved_model(path: Path) -> SavedModelReport:
    """Reads the ops and signatures of a SavedModel without loading it.

    Args:
        path: A SavedModel directory (the one holding ``saved_model.pb``).

    Returns:
        The report; see :class:`SavedModelReport`.

    Raises:
        SavedModelError: ``path`` does not exist, is not a directory, has no ``saved_model.pb``,
            or that file cannot be read or is not a SavedModel proto.
    """
    path = Path(path)
    proto = _read_saved_model(path)
    function_names: set[str] = set()
    used: set[str] = set()
    for meta_graph in proto.meta_graphs:
        library = meta_graph.graph_def.library
        function_names.update(function.signature.name for function in library.function)
        used.update(node.op for node in meta_graph.graph_def.node)
        for function in library.function:
            used.update(node.op for node in function.node_def)
    ops = tuple(sorted(used - function_names))
    custom_ops = tuple(op for op in ops if _is_custom(op))
    namespaces = tuple(sorted({
        op.split(_NAMESPACE_SEPARATOR, 1)[0] for op in custom_ops if _NAMESPACE_SEPARATOR in op
    }))
    return SavedModelReport(
        path=path,
        ops=ops,
        custom_ops=custom_ops,
        namespaces=namespaces,
        signatures=types.MappingProxyType(_signatures(_serving_meta_graph(proto))),
    )


def format_report(report: SavedModelReport) -> str:
    """Renders a report as human-readable lines (ops, TF Serving verdict, signatures).

    Args:
        report: A report from :func:`inspect_saved_model`.

    Returns:
        Multi-line text without a trailing newline.
    """
    custom = ", ".join(report.custom_ops) if report.custom_ops else "none"
    lines = [
        f"saved model: {report.path}",
        f"ops: {len(report.ops)} (custom: {custom})",
        f"stock TF Serving: {_serving_verdict(report)}",
        "signatures:" if report.signatures else "signatures: none",
    ]
    for name in sorted(report.signatures):
        signature = report.signatures[name]
        lines.append(f"  {name}:")
        lines.append(f"    inputs: {_format_tensors(signature.inputs)}")
        lines.append(f"    outputs: {_format_tensors(signature.outputs)}")
    return "\n".join(lines)


def _read_saved_model(path: Path) -> saved_model_pb2.SavedModel:
    if not path.exists():
        raise SavedModelError(f"SavedModel directory {path} does not exist")
    if not path.is_dir():
        raise SavedModelError(
            f"SavedModel path {path} is a file, not a directory; pass the directory that holds "
            f"{_SAVED_MODEL_FILE}")
    file = path / _SAVED_MODEL_FILE
    if not file.is_file():
        hint = (" (found saved_model.pbtxt: only the binary format is supported)"
                if (path / "saved_model.pbtxt").exists() else "")
        raise SavedModelError(
            f"{path} is not a SavedModel directory: it has no {_SAVED_MODEL_FILE}{hint}")
    try:
        data = file.read_bytes()
    except OSError as e:
        raise SavedModelError(f"cannot read {file}: {e}") from e
    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString(data)
    except _proto_message.DecodeError as e:
        raise SavedModelError(
            f"{file} is not a SavedModel proto ({len(data)} bytes that do not parse: {e}); "
            "the file is corrupt or was not written by tf.saved_model.save") from e
    if not proto.meta_graphs:
        raise SavedModelError(
            f"{file} is not a SavedModel proto: it holds no meta graph ({len(data)} bytes); "
            "the file is empty, truncated or was not written by tf.saved_model.save")
    return proto


def _is_custom(op: str) -> bool:
    return _NAMESPACE_SEPARATOR in op or op_def_registry.get(op) is None


def _serving_meta_graph(proto: saved_model_pb2.SavedModel) -> meta_graph_pb2.MetaGraphDef:
    for meta_graph in proto.meta_graphs:
        if _SERVING_TAG in meta_graph.meta_info_def.tags:
            return meta_graph
    return proto.meta_graphs[0]


def _signatures(meta_graph: meta_graph_pb2.MetaGraphDef) -> dict[str, SignatureInfo]:
    return {
        name: SignatureInfo(
            inputs=types.MappingProxyType(_tensors(signature.inputs)),
            outputs=types.MappingProxyType(_tensors(signature.outputs)),
        )
        for name, signature in sorted(meta_graph.signature_def.items())
        if not name.startswith("__")
    }


def _tensors(infos: Mapping[str, meta_graph_pb2.TensorInfo]) -> dict[str, TensorInfo]:
    return {name: _tensor(info) for name, info in sorted(infos.items())}


def _tensor(info: meta_graph_pb2.TensorInfo) -> TensorInfo:
    try:
        dtype = dtypes.as_dtype(info.dtype).name
    except TypeError:  # DT_INVALID (composite tensors) or an enum value this TF does not know
        dtype = types_pb2.DataType.Name(info.dtype) if info.dtype in types_pb2.DataType.values() \
            else str(info.dtype)
    shape_proto = info.tensor_shape
    shape = None if shape_proto.unknown_rank else tuple(int(d.size) for d in shape_proto.dim)
    return TensorInfo(dtype=dtype, shape=shape)


def _serving_verdict(report: SavedModelReport) -> str:
    if report.stock_serving_loadable:
        return "can load (stock ops only)"
    needs = []
    for namespace in report.namespaces:
        module = REQUIRED_IMPORTS.get(namespace)
        step = (f"import {module} before tf.saved_model.load" if module
                else "load the library that registers them before tf.saved_model.load")
        needs.append(f"needs custom ops from namespace {namespace}; {step}")
    unregistered = [op for op in report.custom_ops if _NAMESPACE_SEPARATOR not in op]
    if unregistered:
        needs.append(
            f"needs ops this TensorFlow does not register: {', '.join(unregistered)}; load the "
            "library that registers them before tf.saved_model.load")
    return f"cannot load ({'; '.join(needs)})"


def _format_tensors(tensors: Mapping[str, TensorInfo]) -> str:
    if not tensors:
        return "none"
    return ", ".join(f"{name} {_format_tensor(info)}" for name, info in tensors.items())


def _format_tensor(info: TensorInfo) -> str:
    if info.shape is None:
        return f"{info.dtype}[unknown rank]"
    return f"{info.dtype}[{', '.join(str(d) for d in info.shape)}]"
