"""TF Serving's REST ``:predict`` JSON codec: request bytes -> NumPy inputs -> response bytes.

A port of ``tensorflow_serving/util/json_tensor.cc`` (``FillPredictRequestFromJson`` and
``MakeJsonFromTensors``), keeping its acceptance rules, its error texts and its output bytes
(rapidjson ``PrettyWriter`` layout, ``WriteDecimal`` float formatting). See
``docs/tf_serving_behaviour.md`` sections 2.6 and 2.8. Pure NumPy + json + base64; no TensorFlow.

This module is the public facade; the work is done by:

* :mod:`serving.json_document`: the body as a JSON document (rapidjson's parse errors and
  offsets) and JSON values as TF Serving prints them inside error texts;
* :mod:`serving.json_request`: the request's top level and its inputs as NumPy arrays;
* :mod:`serving.json_tensor`: one JSON value -> one array of a dtype (fast path and exact walk);
* :mod:`serving.json_response`: output arrays -> TF Serving's response bytes.

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

from serving.json_document import COLUMNAR, ROW
from serving.json_request import (
    DEFAULT_SIGNATURE,
    PredictRequestJson,
    TensorSpecInfo,
    decode_inputs,
    parse_predict_request,
)
from serving.json_response import encode_predict_response

__all__ = [
    "COLUMNAR",
    "DEFAULT_SIGNATURE",
    "ROW",
    "PredictRequestJson",
    "TensorSpecInfo",
    "decode_inputs",
    "encode_predict_response",
    "parse_predict_request",
]
