"""The ``:predict`` body as a JSON document, and JSON values as TF Serving prints them in errors.

Parsing follows rapidjson's reader as ``tensorflow_serving/util/json_tensor.cc`` uses it: an
empty body, a NUL byte (read as the end of the input), malformed JSON, a lone UTF-16 surrogate
escape and a top level that is not an object fail with rapidjson's texts
(``JSON Parse error: ... at offset: N``, offsets in bytes). Python's ``json`` does the parsing,
so it differs from rapidjson on inputs TF Serving clients do not normally send:

* Parse errors use rapidjson's messages for the common cases, at Python's offsets; a few rare
  errors (e.g. ``1.``) report a different message or offset.
* Duplicate object keys: the last one wins (rapidjson's lookups take the first).
* ``Inf``, ``-Inf`` and ``-NaN`` are rejected; ``NaN``, ``Infinity`` and ``-Infinity`` are
  accepted, as in TF Serving.
* A decimal beyond the double range (``1e400``) parses as infinity; TF Serving answers
  ``Number too big to be stored in double.`` (so do we for integers of 4300+ digits). Integers
  beyond uint64 are treated as doubles, as rapidjson does.

JSON values inside error texts are written like ``JsonValueToString`` (rapidjson
``PrettyWriter``; a top-level decimal through ``WriteDecimal``), including its truncation at a
NaN or infinity nested in a container.

Also holds what the request and response modules share: the two formats (``ROW`` and
``COLUMNAR``), the INVALID_ARGUMENT error helper and the str -> UTF-8 encoder.
"""

from __future__ import annotations

import json
import math
import re
from operator import methodcaller

import numpy as np

from serving.errors import Code, ServingError, encode_utf8, json_quote

ROW = "row"
COLUMNAR = "columnar"

_ENCODE = methodcaller("encode", "utf-8", "surrogateescape")


def _invalid(message: str) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, message)


# ---------------------------------------------------------------------------------------------
# Parsing the document


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
