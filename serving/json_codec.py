"""TF Serving's REST ``:predict`` JSON codec: request bytes -> NumPy inputs -> response bytes.

A port of ``tensorflow_serving/util/json_tensor.cc`` (``FillPredictRequestFromJson`` and
``MakeJsonFromTensors``), keeping its acceptance rules, its error texts and its output bytes
(rapidjson ``PrettyWriter`` layout, ``WriteDecimal`` float formatting). See
``docs/tf_serving_behaviour.md`` sections 2.6 and 2.8. Pure NumPy + json + base64; no TensorFlow.

Typical use by the HTTP handler::

    request = parse_predict_request(body, signature_names=signatures)
    arrays = decode_inputs(request, signatures[request.signature_name].inputs)
    body = encode_predict_response(model(arrays), request.format)

Every failure raises :class:`~serving.errors.ServingError` with TF Serving's code and text
(``INVALID_ARGUMENT`` unless noted; ``UNIMPLEMENTED`` for dtypes JSON cannot carry).

Known differences from TF Serving (all on inputs TF Serving clients do not normally send):

* Duplicate object keys: the last one wins (rapidjson's lookups take the first).
* ``Inf``, ``-Inf`` and ``-NaN`` are rejected; ``NaN``, ``Infinity`` and ``-Infinity`` are
  accepted, as in TF Serving.
* A decimal beyond the double range (``1e400``) parses as infinity; TF Serving answers
  ``Number too big to be stored in double.`` (so do we for integers of 4300+ digits). Integers
  beyond uint64 are treated as doubles, as rapidjson does.
* Inputs are visited, and outputs written, in the order of the given mappings; TF Serving uses
  its protobuf map's order (which input is reported missing first may differ).
* Parse errors use rapidjson's messages for the common cases, at Python's offsets (in bytes);
  a few rare errors (e.g. ``1.``) report a different message or offset.
* Non-UTF-8 bytes in a string output whose alias does not end in ``_bytes`` are written as
  ``{"b64": ...}``; TF Serving writes them raw, which makes the response invalid JSON.
* Rank above 64 (NumPy's limit) is rejected; TF allows 254.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
import re
from collections.abc import Collection, Mapping
from itertools import chain
from operator import methodcaller
from typing import Any

import numpy as np

from serving.errors import Code, ServingError, encode_utf8, json_quote

__all__ = [
    "DEFAULT_SIGNATURE",
    "PredictRequestJson",
    "TensorSpecInfo",
    "decode_inputs",
    "encode_predict_response",
    "parse_predict_request",
]

DEFAULT_SIGNATURE = "serving_default"
ROW = "row"
COLUMNAR = "columnar"

# numpy-style dtype name -> TF DataTypeString (used in error texts).
_TF_NAMES = {
    "float32": "float", "float64": "double", "float16": "half", "bfloat16": "bfloat16",
    "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64",
    "uint8": "uint8", "uint16": "uint16", "uint32": "uint32", "uint64": "uint64",
    "bool": "bool", "string": "string", "complex64": "complex64", "complex128": "complex128",
}
# AddValueToTensor: DT_FLOAT/DOUBLE take any number that converts without loss. An integer must
# not exceed the mantissa (2**24 - 1 or 2**53 - 1), a decimal must lie in the type's range.
_FLOAT_MAX_INT = {"float32": (1 << 24) - 1, "float64": (1 << 53) - 1}
_FLT_MAX = float(np.finfo(np.float32).max)
# IsInt (int32 range) for the small ints, which are then narrowed like int_val is (wrapping).
_INT32 = (-(1 << 31), (1 << 31) - 1)
_INT_RANGES = {
    "int8": _INT32, "int16": _INT32, "int32": _INT32, "uint8": _INT32,
    "int64": (-(1 << 63), (1 << 63) - 1), "uint32": (0, (1 << 32) - 1),
    "uint64": (0, (1 << 64) - 1),
}
_MAX_RANK = 64  # NumPy's limit

_ENCODE = methodcaller("encode", "utf-8", "surrogateescape")
_a2b_base64 = binascii.a2b_base64


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


def _invalid(message: str) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, message)


def _status_string(error: ServingError) -> str:
    """``Status::ToString()`` of an inner error, as embedded in the row-format wrappers."""
    return f"{error.code.name}: {error.message}"


# ---------------------------------------------------------------------------------------------
# Parsing the document


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


_LONG_INTEGER = re.compile(rb"-?[0-9]{308,}")
_SURROGATE_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u([dD][89a-fA-F][0-9a-fA-F]{2})")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_PYTHON_TO_RAPIDJSON = (
    ("Expecting value", "Invalid value."),
    ("Expecting property name", "Missing a name for object member."),
    ("Expecting ':'", "Missing a colon after a name of object member."),
    ("Extra data", "The document root must not be followed by other values."),
    ("Invalid control character", "Invalid encoding in string."),
    ("Invalid \\escape", "Invalid escape character in string."),
    ("Unexpected UTF-8 BOM", "Invalid value."),
)


def _parse_failure(message: str, offset: int) -> ServingError:
    return _invalid(f"JSON Parse error: {message} at offset: {offset}")


def _parse_document(body: bytes) -> dict:
    if not body:
        raise _invalid("JSON Parse error: The document is empty")
    nul = body.find(b"\0")  # rapidjson's input stream reads NUL as the end of the input
    if nul >= 0:
        body = body[:nul]
    if not body.strip(b" \t\n\r"):
        raise _parse_failure("The document is empty.", len(body))
    text = body.decode("utf-8", "surrogateescape")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        message, offset = _rapidjson_error(text, e)
        surrogate = _lone_surrogate_offset(body)
        if surrogate is not None and surrogate < offset:
            raise _parse_failure("The surrogate pair in string is invalid.", surrogate) from e
        raise _parse_failure(message, offset) from e
    except ValueError as e:  # an integer of more digits than Python converts (4300)
        digits = _LONG_INTEGER.search(body)
        raise _parse_failure("Number too big to be stored in double.",
                             digits.start() if digits else 0) from e
    except RecursionError as e:
        raise _parse_failure("The document is nested too deeply.", 0) from e
    if b"\\u" in body:
        surrogate = _lone_surrogate_offset(body)
        if surrogate is not None:
            raise _parse_failure("The surrogate pair in string is invalid.", surrogate)
    if type(doc) is not dict:
        raise _invalid(f"JSON Value: {_value_text(doc)} Is not object")
    return doc


def _rapidjson_error(text: str, error: json.JSONDecodeError) -> tuple[str, int]:
    """rapidjson's message and byte offset for a Python ``JSONDecodeError``."""
    message, position = error.msg, error.pos
    if message.startswith("Expecting ','"):
        message = ("Missing a comma or '}' after an object member."
                   if _innermost_container(text, position) == "{"
                   else "Missing a comma or ']' after an array element.")
    elif message.startswith("Unterminated string"):
        message, position = "Missing a closing quotation mark in string.", len(text)
    elif message.startswith("Invalid \\uXXXX"):
        message = "Incorrect hex digit after \\u escape in string."
        position = max(text.rfind("\\", 0, position + 1), 0)
    else:
        for python, rapidjson in _PYTHON_TO_RAPIDJSON:
            if message.startswith(python):
                message = rapidjson
                break
    return message, len(encode_utf8(text[:position]))


def _innermost_container(text: str, end: int) -> str:
    """The bracket (``[`` or ``{``) enclosing position ``end`` of a JSON text ('' at top level)."""
    stack: list[str] = []
    for bracket in re.findall(r"[\[\]{}]", _JSON_STRING.sub("", text[:end])):
        if bracket in "[{":
            stack.append(bracket)
        elif stack:
            stack.pop()
    return stack[-1] if stack else ""


def _lone_surrogate_offset(body: bytes) -> int | None:
    """Byte offset of the first ``\\uD800``-``\\uDFFF`` escape that is not a valid pair."""
    high_at = expect_low_at = None
    for match in _SURROGATE_ESCAPE.finditer(body):
        unit = int(match.group(1), 16)
        escape_at = match.end() - 6
        if high_at is not None:
            if escape_at == expect_low_at and unit >= 0xDC00:
                high_at = None
                continue
            return high_at
        if unit >= 0xDC00:
            return escape_at
        high_at, expect_low_at = escape_at, match.end()
    return high_at


# ---------------------------------------------------------------------------------------------
# JSON values in error texts (rapidjson PrettyWriter + JsonValueToString)

_JSON_TYPES = {type(None): "Null", dict: "Object", list: "Array", str: "String", int: "Number",
               float: "Number"}


def _json_type(value) -> str:
    if type(value) is bool:
        return "True" if value else "False"
    return _JSON_TYPES[type(value)]


class _Truncated(Exception):
    """rapidjson's writer stops at a NaN or infinity nested in a container."""


def _is_exact_int(value) -> bool:
    """A JSON integer that rapidjson keeps as an integer; beyond uint64 it parses a double."""
    return type(value) is int and -(1 << 63) <= value < (1 << 64)


def _value_text(value) -> str:
    """``JsonValueToString``: a JSON value as TF Serving prints it inside error texts."""
    if type(value) is int and not _is_exact_int(value) and abs(value) < 1e308:
        value = float(value)
    if type(value) is float:  # a top-level decimal goes through WriteDecimal
        if -3.4028234e38 <= value <= 3.4028234e38:  # rapidjson IsFloat()
            return _tf_decimal(float(np.float32(value)), float32=True)
        return _tf_decimal(value, float32=False)
    parts: list[str] = []
    try:
        _pretty(value, 0, parts)
    except _Truncated:
        pass
    return "".join(parts)


def _pretty(value, depth: int, out: list[str]) -> None:
    kind = type(value)
    if kind is dict:
        if not value:
            out.append("{}")
            return
        out.append("{")
        inner = "    " * (depth + 1)
        for i, (key, item) in enumerate(value.items()):
            out.append(("\n" if i == 0 else ",\n") + inner + json_quote(key) + ": ")
            _pretty(item, depth + 1, out)
        out.append("\n" + "    " * depth + "}")
    elif kind is list:
        if not value:
            out.append("[]")
            return
        out.append("[")
        inner = "    " * (depth + 1)
        for i, item in enumerate(value):
            out.append(("\n" if i == 0 else ",\n") + inner)
            _pretty(item, depth + 1, out)
        out.append("\n" + "    " * depth + "]")
    elif kind is str:
        out.append(json_quote(value))
    elif kind is bool:
        out.append("true" if value else "false")
    elif value is None:
        out.append("null")
    elif kind is int:
        exact = _is_exact_int(value) or abs(value) >= 1e308
        out.append(str(value) if exact else _rapidjson_double(float(value)))
    elif math.isfinite(value):
        out.append(_rapidjson_double(value))
    else:
        raise _Truncated


def _rapidjson_double(value: float) -> str:
    """rapidjson ``Writer::Double``: shortest digits laid out by its ``Prettify``."""
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign = "-" if value < 0 else ""
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    k = (int(exponent) if exponent else 0) - len(fraction)
    stripped = digits.rstrip("0")
    k += len(digits) - len(stripped)
    digits, length = stripped, len(stripped)
    kk = length + k  # 10^(kk-1) <= value < 10^kk
    if 0 <= k and kk <= 21:
        text = digits + "0" * k + ".0"
    elif 0 < kk <= 21:
        text = digits[:kk] + "." + digits[kk:]
    elif -6 < kk <= 0:
        text = "0." + "0" * -kk + digits
    elif length == 1:
        text = f"{digits}e{kk - 1}"
    else:
        text = f"{digits[0]}.{digits[1:]}e{kk - 1}"
    return sign + text


def _tf_decimal(value: float, float32: bool) -> str:
    """``WriteDecimal``: %g (6 digits); %.9g/%.17g if that does not round-trip; whole -> ``.0``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    text = "%g" % value
    back = float(text)
    if (float(np.float32(back)) if float32 else back) != value:
        text = ("%.9g" if float32 else "%.17g") % value
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def _shape_text(shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


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


def _is_b64(value) -> bool:
    """``IsValBase64Object``: an object with exactly one key, ``b64``, holding a string."""
    return type(value) is dict and len(value) == 1 and type(value.get("b64")) is str


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


def _decode_tensor(value, dtype: str) -> np.ndarray:
    array = _dense_fast(value, dtype)
    if array is None:
        shape = _first_walk_shape(value)
        found: list = []
        _fill(value, 0, shape, dtype, found)
        array = _to_array(found, shape, dtype)
    return array


def _first_walk_shape(value) -> list[int]:
    """``GetDenseTensorShape``: list sizes along the first element of every level."""
    shape = []
    while type(value) is list:
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value, level: int, shape: list[int], dtype: str, out: list) -> None:
    """``FillTensorProto``: append the leaves of ``value`` to ``out`` or raise TF's error."""
    rank = len(shape)
    if type(value) is not list:
        if level != rank:
            raise _invalid(f"JSON Value: {_value_text(value)} found at incorrect level:"
                           f" {level + 1} in the JSON DOM. Expected at level: {rank}")
        if type(value) is dict:
            if dtype != "string":
                raise _type_error(value, dtype)
            out.append(_decode_b64_object(value))
        else:
            out.append(_convert(value, dtype))
        return
    if level >= rank:
        raise _invalid(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise _invalid(f"Encountered list at unexpected size: {len(value)} at level: {level}"
                       f" expected size: {shape[level]}")
    for item in value:
        _fill(item, level + 1, shape, dtype, out)


def _type_error(value, dtype: str) -> ServingError:
    return _invalid(f"JSON Value: {_value_text(value)} Type: {_json_type(value)}"
                    f" is not of expected type: {_TF_NAMES.get(dtype, dtype)}")


def _convert(value, dtype: str):
    """``AddValueToTensor`` for one JSON scalar."""
    kind = type(value)
    if dtype in _FLOAT_MAX_INT:
        if kind is not int and kind is not float:
            raise _type_error(value, dtype)
        if not _is_lossless(value, dtype):
            raise _invalid(f"Cannot convert JSON value: {_value_text(value)} to"
                           f" {_TF_NAMES[dtype]} without loss of precision.")
        return float(value)
    if dtype in _INT_RANGES:
        low, high = _INT_RANGES[dtype]
        if kind is not int or not low <= value <= high:
            raise _type_error(value, dtype)
        return value
    if dtype == "bool":
        if kind is not bool:
            raise _type_error(value, dtype)
        return value
    if dtype == "string":
        if kind is not str:
            raise _type_error(value, dtype)
        return _ENCODE(value)
    raise ServingError(Code.UNIMPLEMENTED, f"Conversion of JSON Value: {_value_text(value)}"
                                           f" to type: {_TF_NAMES.get(dtype, dtype)}")


def _is_lossless(value, dtype: str) -> bool:
    """``IsLosslessDecimal``."""
    if _is_exact_int(value):
        return abs(value) <= _FLOAT_MAX_INT[dtype]
    try:
        number = float(value)
    except OverflowError:  # rapidjson refuses to parse such an integer at all
        return False
    if not math.isfinite(number):
        return True
    return dtype != "float32" or -_FLT_MAX <= number <= _FLT_MAX


def _decode_b64_object(value: dict) -> bytes:
    """``JsonDecodeBase64Object``."""
    if not _is_b64(value):
        raise _invalid(f"JSON Value: {_value_text(value)} not formatted correctly for base64 data")
    decoded = _b64decode(value["b64"])
    if decoded is None:
        raise _invalid("Unable to base64 decode")
    return decoded


_B64_WHITESPACE = str.maketrans("", "", " \t\n\v\f\r")
_B64_LAYOUT = re.compile(r"([A-Za-z0-9+/]*)([=.]*)")
_B64_PADDING = {0: 0, 2: 2, 3: 1}


def _b64decode(text: str) -> bytes | None:
    """``absl::Base64Unescape``: whitespace ignored, padding ('=' or '.') complete or absent."""
    if len(text) % 4 == 0 and not text.endswith("==="):  # fast path: canonical base64
        try:
            return binascii.a2b_base64(text, strict_mode=True)
        except (binascii.Error, ValueError):
            pass
    match = _B64_LAYOUT.fullmatch(text.translate(_B64_WHITESPACE))
    if match is None:
        return None
    data, padding = match.groups()
    expected = _B64_PADDING.get(len(data) % 4)
    if expected is None or len(padding) not in (0, expected):
        return None
    return binascii.a2b_base64(data + "=" * expected)


def _dense_fast(value, dtype: str) -> np.ndarray | None:
    """The tensor for a valid nested list, found with C-level passes; ``None`` if not sure.

    Accepts exactly what ``_fill`` accepts for supported dtypes (a dense nested list of values
    of the right JSON types); everything else goes to the exact walk, which raises.
    """
    if type(value) is not list:
        return None
    shape = []
    level = [value]
    types: set = set()
    while True:
        sizes = set(map(len, level))
        if len(sizes) != 1:
            return None
        size = sizes.pop()
        shape.append(size)
        if size == 0:
            leaves: list = []
            break
        below = level[0] if len(level) == 1 else list(chain.from_iterable(level))
        types = set(map(type, below))
        if list in types:
            if len(types) != 1:
                return None
            level = below
            continue
        leaves = below
        break
    if len(shape) > _MAX_RANK:
        return None
    if not leaves:
        if dtype in _FLOAT_MAX_INT or dtype in _INT_RANGES or dtype in ("bool", "string"):
            return _to_array([], shape, dtype)
        return None
    array = _leaves_fast(leaves, types, dtype)
    return None if array is None else array.reshape(shape)


def _leaves_fast(leaves: list, types: set, dtype: str) -> np.ndarray | None:
    if dtype in _FLOAT_MAX_INT:
        if not types <= {int, float}:
            return None
        try:
            array = np.array(leaves, dtype=np.float64)
        except OverflowError:
            return None
        if int in types:
            for i in np.flatnonzero(np.abs(array) > _FLOAT_MAX_INT[dtype]).tolist():
                if _is_exact_int(leaves[i]):
                    return None
        if dtype == "float32":
            if (np.isfinite(array) & (np.abs(array) > _FLT_MAX)).any():
                return None
            return array.astype(np.float32)
        return array
    if dtype in _INT_RANGES:
        if types != {int}:
            return None
        try:
            array = np.array(leaves, dtype=np.uint64 if dtype == "uint64" else np.int64)
        except OverflowError:
            return None
        low, high = _INT_RANGES[dtype]
        if dtype not in ("int64", "uint64") and (array.min() < low or array.max() > high):
            return None
        return array.astype(dtype, copy=False)
    if dtype == "bool":
        return np.array(leaves, dtype=bool) if types == {bool} else None
    if dtype == "string":
        if types == {str}:
            found = list(map(_ENCODE, leaves))
        elif types <= {str, dict}:
            found = []
            append = found.append
            for leaf in leaves:  # the per-value work of _is_b64 and _b64decode, inlined
                if type(leaf) is str:
                    append(_ENCODE(leaf))
                    continue
                text = leaf.get("b64") if len(leaf) == 1 else None
                if type(text) is not str:
                    return None
                if len(text) % 4 == 0 and not text.endswith("==="):
                    try:
                        append(_a2b_base64(text, strict_mode=True))
                        continue
                    except (binascii.Error, ValueError):
                        pass
                decoded = _b64decode(text)
                if decoded is None:
                    return None
                append(decoded)
        else:
            return None
        return _object_array(found)
    return None


def _object_array(items: list) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def _to_array(values: list, shape: list[int], dtype: str) -> np.ndarray:
    if len(shape) > _MAX_RANK:
        raise _invalid(f"Tensor of rank {len(shape)} is not supported: at most {_MAX_RANK}"
                       " dimensions")
    if dtype == "string":
        array = _object_array(values)
    elif dtype in _FLOAT_MAX_INT:
        array = np.array(values, dtype=np.float64).astype(dtype)
    elif dtype in _INT_RANGES:
        array = np.array(values, dtype=np.uint64 if dtype == "uint64" else np.int64)
        array = array.astype(dtype)
    elif dtype == "bool":
        array = np.array(values, dtype=bool)
    else:  # no values were converted, so TF Serving accepts the (empty) tensor
        try:
            array = np.empty(0, dtype=np.dtype(dtype))
        except TypeError as e:
            raise ServingError(Code.UNIMPLEMENTED, f"Conversion of JSON Value: [] to type:"
                                                   f" {_TF_NAMES.get(dtype, dtype)}") from e
    return array.reshape(shape)


# ---------------------------------------------------------------------------------------------
# Encoding outputs


def encode_predict_response(outputs: Mapping[str, np.ndarray], request_format: str) -> bytes:
    """The response body TF Serving writes for ``outputs`` (``MakeJsonFromTensors``).

    Row format gives ``{"predictions": [...]}``: one value per batch item with one output, one
    ``{alias: value}`` object per item with several (all outputs must share dim 0). Columnar
    gives ``{"outputs": value}`` or ``{"outputs": {alias: value}}``. Objects follow the order of
    ``outputs``. Floats are written like TF Serving (``%g``, or 9/17 digits when that does not
    round-trip; whole numbers get ``.0``; ``NaN``/``Infinity`` bare); strings as UTF-8 text, or
    ``{"b64": ...}`` when the alias ends in ``_bytes`` or the bytes are not valid UTF-8. The
    whitespace is rapidjson's PrettyWriter's, byte for byte.

    Raises:
        ServingError: INVALID_ARGUMENT with TF Serving's text for unwritable outputs.
    """
    if not outputs:
        raise _invalid("Cannot convert empty tensor map to JSON")
    arrays = {name: np.asarray(value) for name, value in outputs.items()}
    if request_format == ROW:
        text = _row_json(arrays)
    elif request_format == COLUMNAR:
        text = _columnar_json(arrays)
    else:
        raise _invalid("Invalid request format")
    return encode_utf8(text)


def _row_json(arrays: dict[str, np.ndarray]) -> str:
    batch = 0
    for name, array in arrays.items():
        if array.ndim == 0:
            raise _invalid(f"Tensor name: {name} has no shape information ")
        size = array.shape[0]
        if size < 1:
            raise _invalid(f"Tensor name: {name} has invalid batch size: {size}")
        if batch and size != batch:
            raise _invalid(f"Tensor name: {name} has inconsistent batch size: {size}"
                           f" expecting: {batch}")
        batch = size
    if len(arrays) == 1:
        ((name, array),) = arrays.items()
        items = _texts(name, array, first_axis=1, depth=2, single_line=True)
        return '{\n    "predictions": [' + ", ".join(items) + "\n    ]\n}"
    columns = [(json_quote(name), _texts(name, array, first_axis=1, depth=3, single_line=True))
               for name, array in arrays.items()]
    rows = []
    for i in range(batch):
        members = ",".join(f"\n            {key}: {texts[i]}" for key, texts in columns)
        rows.append("\n        {" + members + "\n        }")
    return '{\n    "predictions": [' + ",".join(rows) + "\n    ]\n}"


def _columnar_json(arrays: dict[str, np.ndarray]) -> str:
    if len(arrays) == 1:
        ((name, array),) = arrays.items()
        (value,) = _texts(name, array, first_axis=0, depth=1, single_line=False)
        return '{\n    "outputs": ' + value + "\n}"
    members = ",".join(
        f"\n        {json_quote(name)}: "
        + _texts(name, array, first_axis=0, depth=2, single_line=False)[0]
        for name, array in arrays.items())
    return '{\n    "outputs": {' + members + "\n    }\n}"


def _texts(name: str, array: np.ndarray, first_axis: int, depth: int,
           single_line: bool) -> list[str]:
    """JSON texts of ``array``'s sub-tensors along ``array.shape[:first_axis]``, flattened.

    ``depth`` counts the containers already open where each sub-tensor is written; arrays are
    on one line in ``single_line`` mode (row format) and one value per line otherwise.
    """
    leaf_depth = depth + array.ndim - first_axis
    items = _tokens(name, array.reshape(-1), leaf_depth)
    shape = array.shape
    for axis in range(array.ndim - 1, first_axis - 1, -1):
        size, groups = shape[axis], math.prod(shape[:axis])
        if size == 0:
            items = ["[]"] * groups
            continue
        chunks = (items[g * size:(g + 1) * size] for g in range(groups))
        if single_line:
            items = ["[" + ", ".join(chunk) + "]" for chunk in chunks]
        else:
            inside = "    " * (depth + axis - first_axis + 1)
            opening, separator = "[\n" + inside, ",\n" + inside
            closing = "\n" + inside[4:] + "]"
            items = [opening + separator.join(chunk) + closing for chunk in chunks]
    return items


_NUMPY_TO_TF = {"float16": "half", "uint16": "uint16", "complex64": "complex64",
                "complex128": "complex128"}
_BOOL_TEXT = {True: "true", False: "false"}


def _tokens(name: str, flat: np.ndarray, leaf_depth: int) -> list[str]:
    """The JSON text of every value of ``flat`` (``AddSingleValueAndAdvance``)."""
    if flat.size == 0:
        return []
    dtype = flat.dtype
    if dtype == np.float32 or dtype == np.float64:
        return _decimal_tokens(flat)
    if dtype.kind in "iu" and dtype != np.uint16:
        return list(map(str, flat.tolist()))
    if dtype.kind == "b":
        return list(map(_BOOL_TEXT.__getitem__, flat.tolist()))
    if dtype.kind in "OSU":
        return _string_tokens(name, flat, leaf_depth)
    raise _invalid("Failed to write JSON value for tensor type: "
                   + _NUMPY_TO_TF.get(dtype.name, dtype.name))


def _decimal_tokens(flat: np.ndarray) -> list[str]:
    """``WriteDecimal`` for a whole float32/float64 array (vectorised round-trip check)."""
    values = flat.tolist()
    tokens = list(map("%g".__mod__, values))
    back = np.array(list(map(float, tokens)), dtype=np.float64)
    precise = "%.17g"
    if flat.dtype == np.float32:
        back, precise = back.astype(np.float32), "%.9g"
    finite = np.isfinite(flat)
    for i in np.flatnonzero((back != flat) & finite).tolist():
        tokens[i] = precise % values[i]
    tokens = [t if "." in t or "e" in t else t + ".0" for t in tokens]
    if not finite.all():
        for i in np.flatnonzero(~finite).tolist():
            value = values[i]
            tokens[i] = "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    return tokens


def _string_tokens(name: str, flat: np.ndarray, leaf_depth: int) -> list[str]:
    opening = "{\n" + "    " * (leaf_depth + 1) + '"b64": "'
    closing = '"\n' + "    " * leaf_depth + "}"
    as_bytes = name.endswith("_bytes")
    tokens = []
    for value in flat.tolist():
        if type(value) is str:
            value = _ENCODE(value)
        elif not isinstance(value, bytes):
            raise ServingError(Code.INTERNAL, f"Output {name} holds a {type(value).__name__}"
                                              " where bytes or str are expected")
        if not as_bytes:
            try:
                tokens.append(json_quote(value.decode("utf-8")))
                continue
            except UnicodeDecodeError:
                pass  # TF Serving would write the raw bytes (invalid JSON); use base64 instead
        tokens.append(opening + base64.b64encode(value).decode("ascii") + closing)
    return tokens
