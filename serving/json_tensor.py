"""One JSON value -> one NumPy array of a signature input's dtype (``FillTensorProto``).

Two paths, tried in this order (``_decode_tensor``):

* the fast path (``_dense_fast``): C-level passes over a dense nested list whose leaves all have
  the right JSON type; it accepts exactly what the exact walk accepts for supported dtypes and
  returns ``None`` whenever it is not sure;
* the exact walk (``_first_walk_shape`` + ``_fill`` + ``_to_array``): ``GetDenseTensorShape``,
  ``FillTensorProto`` and ``AddValueToTensor`` leaf by leaf, raising TF Serving's texts.

Conversion rules: floats take any number that converts without loss (``IsLosslessDecimal``),
small ints are checked against the int32 range and then narrowed (wrapping) as ``int_val`` is,
strings are UTF-8 (``surrogateescape``) or ``{"b64": ...}`` objects decoded like
``absl::Base64Unescape``. Dtypes JSON cannot carry answer UNIMPLEMENTED. Rank above 64 (NumPy's
limit) is rejected; TF allows 254.
"""

from __future__ import annotations

import binascii
import math
import re
from itertools import chain

import numpy as np

from serving.errors import Code, ServingError
from serving.json_document import _ENCODE, _invalid, _is_exact_int, _json_type, _value_text

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

_a2b_base64 = binascii.a2b_base64


def _is_b64(value) -> bool:
    """``IsValBase64Object``: an object with exactly one key, ``b64``, holding a string."""
    return type(value) is dict and len(value) == 1 and type(value.get("b64")) is str


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
