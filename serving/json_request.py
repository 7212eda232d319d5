"""Predict requests: the top level of the body, then the inputs as NumPy arrays.

``parse_predict_request`` is ``FillPredictRequestFromJson``'s first half: the signature name,
one of ``instances`` (row format) or ``inputs`` (columnar format). ``decode_inputs`` is its
second half: ``FillTensorMapFromInstancesList`` (row format; each instance is checked against
the earlier ones and the results stacked along a new dim 0, with TF Serving's error wrappers)
and ``FillTensorMapFromInputsMap`` (columnar format). Valid inputs are decoded with the fast
path of :mod:`serving.json_tensor`; anything else goes through the exact walk, which raises TF
Serving's texts.

Inputs are visited in the order of the given mapping; TF Serving uses its protobuf map's order
(which input is reported missing first may differ). A decoded rank that differs from a known
signature rank is rejected.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from serving.errors import ServingError
from serving.json_document import COLUMNAR, ROW, _invalid, _parse_document, _value_text
from serving.json_tensor import (
    _decode_tensor,
    _dense_fast,
    _fill,
    _first_walk_shape,
    _is_b64,
    _to_array,
)

DEFAULT_SIGNATURE = "serving_default"


@dataclasses.dataclass(frozen=True)
class TensorSpecInfo:
    """One signature input: a numpy-style ``dtype`` name (``"string"`` = bytes) and ``shape``.

    ``shape`` uses -1 for an unknown dimension and ``None`` for an unknown rank. Supported dtypes:
    float32, float64, int8, int16, int32, int64, uint8, uint32, uint64, bool, string; any other
    name is accepted here and answered with TF Serving's UNIMPLEMENTED at decode time.
    """

    dtype: str
    shape: tuple[int, ...] | None = None

    def __post_init__(self):
        if self.shape is not None:
            object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))


@dataclasses.dataclass(frozen=True)
class PredictRequestJson:
    """A parsed predict request whose top level has been validated (inputs not yet decoded).

    ``format`` is ``"row"`` (``instances``) or ``"columnar"`` (``inputs``); ``value`` is the raw
    JSON value of that key; ``requested_signature_name`` is what the client sent ("" if absent).
    """

    signature_name: str
    format: str
    value: Any
    requested_signature_name: str = ""


def _status_string(error: ServingError) -> str:
    """``Status::ToString()`` of an inner error, as embedded in the row-format wrappers."""
    return f"{error.code.name}: {error.message}"


def _shape_text(shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


# ---------------------------------------------------------------------------------------------
# Parsing the top level


def parse_predict_request(
    body: bytes, signature_names: Collection[str] | None = None
) -> PredictRequestJson:
    """Parse a ``:predict`` body and check its top level exactly as TF Serving does.

    Args:
        body: the HTTP request body.
        signature_names: the model's signature keys. When given, an unknown ``signature_name``
            fails here, before the inputs are looked at (TF Serving's order).

    Raises:
        ServingError: INVALID_ARGUMENT with TF Serving's text.
    """
    doc = _parse_document(bytes(body) if not isinstance(body, str) else body.encode())
    requested = doc.get("signature_name", "")
    if type(requested) is not str:
        raise _invalid(f"JSON Value: {_value_text(doc)} not formatted correctly. "
                       "'signature_name' key must be a string value.")
    name = requested or DEFAULT_SIGNATURE
    if signature_names is not None and name not in signature_names:
        raise _invalid(f'Serving signature name: "{name}" not found in signature def')
    if "instances" in doc:
        if "inputs" in doc:
            raise _invalid(f"JSON Value: {_value_text(doc)} Not formatted correctly expecting only"
                           " one of 'inputs' or 'instances' keys to exist ")
        instances = doc["instances"]
        if type(instances) is not list:
            raise _invalid(f"JSON Value: {_value_text(doc)} Excepting 'instances' to be an"
                           " list/array")
        if not instances:
            raise _invalid(f"JSON Value: {_value_text(doc)} No values in 'instances' array")
        return PredictRequestJson(name, ROW, instances, requested)
    if "inputs" in doc:
        return PredictRequestJson(name, COLUMNAR, doc["inputs"], requested)
    raise _invalid("Missing 'inputs' or 'instances' key")


# ---------------------------------------------------------------------------------------------
# Decoding inputs


def decode_inputs(
    request: PredictRequestJson, inputs: Mapping[str, TensorSpecInfo]
) -> dict[str, np.ndarray]:
    """Turn the request's ``instances``/``inputs`` into one array per signature input.

    Args:
        request: from :func:`parse_predict_request`.
        inputs: the signature's inputs, in signature order.

    Returns:
        ``{alias: array}`` in ``inputs`` order; arrays have the input's dtype (strings: an
        object array of ``bytes``). Row format stacks the instances along a new dim 0.

    Raises:
        ServingError: INVALID_ARGUMENT (UNIMPLEMENTED for an unsupported dtype) with TF
            Serving's text; also when a decoded rank differs from a known signature rank.
    """
    if not inputs:
        raise _invalid("Failed to get input map for signature: "
                       + (request.requested_signature_name or "DEFAULT"))
    specs = dict(inputs)
    if request.format == ROW:
        tensors = _decode_rows(request.value, specs)
    elif request.format == COLUMNAR:
        tensors = _decode_columns(request.value, specs)
    else:
        raise ValueError(f"request.format must be {ROW!r} or {COLUMNAR!r}, got {request.format!r}")
    for name, array in tensors.items():
        expected = specs[name].shape
        if expected is not None and len(expected) != array.ndim:
            raise _invalid(
                f"Input: {name} has rank {array.ndim} (shape {_shape_text(array.shape)}) but the "
                f"signature expects rank {len(expected)} (shape {_shape_text(expected)}, "
                "-1 = any size)")
    return tensors


def _is_element_object(value) -> bool:
    return type(value) is dict and not _is_b64(value)


def _decode_columns(value, specs: dict[str, TensorSpecInfo]) -> dict[str, np.ndarray]:
    """``FillTensorMapFromInputsMap``."""
    names = list(specs)
    if type(value) is not dict or _is_b64(value):
        if len(names) > 1:
            raise _invalid("inputs is a plain value/list, but expecting an object as multiple"
                           " input tensors required as per tensorinfo_map")
        return {names[0]: _decode_tensor(value, specs[names[0]].dtype)}
    tensors = {}
    for name in names:
        if name not in value:
            raise _invalid(f"Missing named input: {name} in 'inputs' object.")
        tensors[name] = _decode_tensor(value[name], specs[name].dtype)
    return tensors


def _decode_rows(instances: list, specs: dict[str, TensorSpecInfo]) -> dict[str, np.ndarray]:
    """``FillTensorMapFromInstancesList``: a fast path for valid requests, else the exact walk."""
    names = list(specs)
    first = instances[0]
    if type(first) is not dict and len(names) > 1:
        raise _invalid("instances is a plain list, but expecting list of objects as multiple"
                       " input tensors required as per tensorinfo_map")
    objects = _is_element_object(first)
    if objects:
        name_set = set(names)
        if "b64" not in name_set and all(
                type(e) is dict and e.keys() == name_set for e in instances):
            tensors = {}
            for name in names:
                array = _dense_fast([e[name] for e in instances], specs[name].dtype)
                if array is None:
                    break
                tensors[name] = array
            else:
                return tensors
    elif len(names) == 1:
        array = _dense_fast(instances, specs[names[0]].dtype)
        if array is not None:
            return {names[0]: array}
    return _decode_rows_exactly(instances, specs, objects)


def _decode_rows_exactly(instances: list, specs: dict[str, TensorSpecInfo],
                         objects: bool) -> dict[str, np.ndarray]:
    names = list(specs)
    name_set = set(names)
    sizes: dict[str, int] = {}
    shapes: dict[str, list[int]] = {}
    values: dict[str, list] = {}
    for i, element in enumerate(instances):
        if objects:
            if not _is_element_object(element):
                raise _invalid(f"Expecting object but got list at item {i} of input list")
            for key, item in element.items():
                try:
                    _add_instance_item(item, key, specs, sizes, shapes, values)
                except ServingError as e:
                    raise _invalid(f"Failed to process element: {i} key: {key} of 'instances'"
                                   f" list. Error: {_status_string(e)}") from e
            if element.keys() != name_set:
                raise _invalid(f"Failed to process element: {i} of 'instances' list. JSON object:"
                               f" {_value_text(element)} must only have keys: "
                               + ",".join(sorted(names)))
        else:
            if _is_element_object(element):
                raise _invalid(f"Expecting value/list but got object at item {i} of input list")
            try:
                _add_instance_item(element, names[0], specs, sizes, shapes, values)
            except ServingError as e:
                raise _invalid(f"Failed to process element: {i} of 'instances' list."
                               f" Error: {_status_string(e)}") from e
    if len(values) != len(names):
        # Only when instances are b64 objects but the signature has several inputs: TF Serving
        # then fills the first input only and predict_util rejects the request.
        sent, wanted = sorted(values), sorted(names)
        raise _invalid(
            f"input size does not match signature: {len(sent)}!={len(wanted)}"
            f" len({{{','.join(sent)}}}) != len({{{','.join(wanted)}}})."
            f" Sent extra: {{{','.join(sorted(set(sent) - name_set))}}}."
            f" Missing but required: {{{','.join(sorted(name_set - set(sent)))}}}.")
    count = len(instances)
    return {name: _to_array(values[name], [count] + shapes[name], specs[name].dtype)
            for name in names}


def _add_instance_item(item, name: str, specs, sizes, shapes, values) -> None:
    """``AddInstanceItem``: one instance's value for one input, checked against earlier ones."""
    if name not in specs:
        raise _invalid(f"JSON object: does not have named input: {name}")
    shape = _first_walk_shape(item)
    found: list = []
    _fill(item, 0, shape, specs[name].dtype, found)
    if name not in sizes:
        sizes[name], shapes[name], values[name] = len(found), shape, found
    elif sizes[name] != len(found):
        raise _invalid(f"Expecting tensor size: {sizes[name]} but got: {len(found)}")
    elif shapes[name] != shape:
        raise _invalid(f"Expecting shape {_shape_text(shapes[name])} but got:"
                       f" {_shape_text(shape)}")
    else:
        values[name].extend(found)
