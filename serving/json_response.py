"""Predict responses: output arrays -> TF Serving's response bytes (``MakeJsonFromTensors``).

The bytes match TF Serving's: rapidjson ``PrettyWriter``'s whitespace, floats written by
``WriteDecimal`` (``%g``, or 9/17 digits when that does not round-trip; whole numbers get
``.0``; ``NaN``/``Infinity`` bare), integers and booleans as JSON numbers and literals, strings
as UTF-8 text or ``{"b64": ...}`` when the alias ends in ``_bytes``.

Outputs are written in the order of the given mapping; TF Serving uses its protobuf map's
order. Non-UTF-8 bytes in a string output whose alias does not end in ``_bytes`` are written as
``{"b64": ...}``; TF Serving writes them raw, which makes the response invalid JSON.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping

import numpy as np

from serving.errors import Code, ServingError, encode_utf8, json_quote
from serving.json_document import COLUMNAR, ROW, _ENCODE, _invalid


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
