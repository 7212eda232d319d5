"""serving.json_codec and serving.errors: TF Serving's REST predict JSON, texts and bytes.

Expected texts come from tensorflow_serving/util/json_tensor.cc (docs/tf_serving_behaviour.md
2.6 and 2.8); parse-error offsets are worked out by hand from rapidjson's reader.
"""

from __future__ import annotations

import base64
import json
import math
import pickle
import random
import subprocess
import sys

import grpc
import numpy as np
import pytest

from serving import json_tensor
from serving.errors import Code, ServingError, json_error_body
from serving.json_codec import (
    PredictRequestJson,
    TensorSpecInfo,
    decode_inputs,
    encode_predict_response,
    parse_predict_request,
)

F32 = {"x": TensorSpecInfo("float32", None)}
I64 = {"x": TensorSpecInfo("int64", None)}
STR = {"x": TensorSpecInfo("string", None)}
TWO = {"a": TensorSpecInfo("float32", None), "b": TensorSpecInfo("int64", None)}
HALF = {"x": TensorSpecInfo("float16", None)}


def predict(body, inputs, signature_names=None) -> dict[str, np.ndarray]:
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    return decode_inputs(parse_predict_request(body, signature_names), inputs)


def row(instances, inputs=F32):
    return predict({"instances": instances}, inputs)


def columnar(value, inputs=F32):
    return predict({"inputs": value}, inputs)


def failure(call, *args) -> ServingError:
    with pytest.raises(ServingError) as info:
        call(*args)
    return info.value


# ---------------------------------------------------------------------------------------------
# Error texts, one row per TF Serving message

BAD = "Failed to process element: {} of 'instances' list. Error: INVALID_ARGUMENT: {}"

REQUEST_ERRORS = [
    # (id, body, inputs, signature names, code, text)
    ("empty", b"", F32, None, Code.INVALID_ARGUMENT, "JSON Parse error: The document is empty"),
    ("blank", b" \n\t", F32, None, Code.INVALID_ARGUMENT,
     "JSON Parse error: The document is empty. at offset: 3"),
    ("not json", b"abc", F32, None, Code.INVALID_ARGUMENT,
     "JSON Parse error: Invalid value. at offset: 0"),
    ("trailing comma", b'{"instances": [1,]}', F32, None, Code.INVALID_ARGUMENT,
     "JSON Parse error: Invalid value. at offset: 17"),
    ("object comma", b'{"a": 1 "b": 2}', F32, None, Code.INVALID_ARGUMENT,
     "JSON Parse error: Missing a comma or '}' after an object member. at offset: 8"),
    ("array comma", b'{"a": [1 2]}', F32, None, Code.INVALID_ARGUMENT,
     "JSON Parse error: Missing a comma or ']' after an array element. at offset: 9"),
    ("colon", b'{"a" 1}', F32, None, Code.INVALID_ARGUMENT,
     "JSON Parse error: Missing a colon after a name of object member. at offset: 5"),
    ("name", b'{"a": 1,}', F32, None, Code.INVALID_ARGUMENT,
     "JSON Parse error: Missing a name for object member. at offset: 8"),
    ("two roots", b"{} x", F32, None, Code.INVALID_ARGUMENT,
     "JSON Parse error: The document root must not be followed by other values. at offset: 3"),
    ("unterminated", b'{"a": "abc', F32, None, Code.INVALID_ARGUMENT,
     "JSON Parse error: Missing a closing quotation mark in string. at offset: 10"),
    ("escape", b'{"a": "\\x"}', F32, None, Code.INVALID_ARGUMENT,
     "JSON Parse error: Invalid escape character in string. at offset: 7"),
    ("hex", b'{"a": "\\u12G4"}', F32, None, Code.INVALID_ARGUMENT,
     "JSON Parse error: Incorrect hex digit after \\u escape in string. at offset: 7"),
    ("control", b'{"a": "\x01"}', F32, None, Code.INVALID_ARGUMENT,
     "JSON Parse error: Invalid encoding in string. at offset: 7"),
    ("lone high surrogate", b'{"a": "\\ud800"}', F32, None, Code.INVALID_ARGUMENT,
     "JSON Parse error: The surrogate pair in string is invalid. at offset: 7"),
    ("lone low surrogate", b'{"a": "\\\\\\udc00"}', F32, None, Code.INVALID_ARGUMENT,
     "JSON Parse error: The surrogate pair in string is invalid. at offset: 9"),
    ("number too big", b'{"a": ' + b"9" * 5000 + b"}", F32, None, Code.INVALID_ARGUMENT,
     "JSON Parse error: Number too big to be stored in double. at offset: 6"),
    ("bom", b'\xef\xbb\xbf{"instances": [1]}', F32, None, Code.INVALID_ARGUMENT,
     "JSON Parse error: Invalid value. at offset: 0"),
    ("offset in bytes", '{"é": 1 2}'.encode(), F32, None, Code.INVALID_ARGUMENT,
     "JSON Parse error: Missing a comma or '}' after an object member. at offset: 9"),
    ("not object", b"[1]", F32, None, Code.INVALID_ARGUMENT,
     "JSON Value: [\n    1\n] Is not object"),
    ("decimal not object", b"0.1", F32, None, Code.INVALID_ARGUMENT,
     "JSON Value: 0.1 Is not object"),
    ("signature type", b'{"signature_name": 1, "instances": [1]}', F32, None,
     Code.INVALID_ARGUMENT,
     'JSON Value: {\n    "signature_name": 1,\n    "instances": [\n        1\n    ]\n}'
     " not formatted correctly. 'signature_name' key must be a string value."),
    ("unknown signature", b'{"signature_name": "predict", "instances": [1]}', F32,
     {"serving_default"}, Code.INVALID_ARGUMENT,
     'Serving signature name: "predict" not found in signature def'),
    ("signature before keys", b'{"signature_name": "predict"}', F32, {"serving_default"},
     Code.INVALID_ARGUMENT, 'Serving signature name: "predict" not found in signature def'),
    ("no key", b'{"instance": [1]}', F32, None, Code.INVALID_ARGUMENT,
     "Missing 'inputs' or 'instances' key"),
    ("both keys", b'{"instances": [1], "inputs": [1]}', F32, None, Code.INVALID_ARGUMENT,
     'JSON Value: {\n    "instances": [\n        1\n    ],\n    "inputs": [\n        1\n    ]\n}'
     " Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist "),
    ("instances not list", b'{"instances": {"x": 1}}', F32, None, Code.INVALID_ARGUMENT,
     'JSON Value: {\n    "instances": {\n        "x": 1\n    }\n}'
     " Excepting 'instances' to be an list/array"),
    ("empty instances", b'{"instances": []}', F32, None, Code.INVALID_ARGUMENT,
     "JSON Value: {\n    \"instances\": []\n} No values in 'instances' array"),
    ("no input map", b'{"instances": [1]}', {}, None, Code.INVALID_ARGUMENT,
     "Failed to get input map for signature: DEFAULT"),
    ("plain list, several inputs", b'{"instances": [[1], [2]]}', TWO, None,
     Code.INVALID_ARGUMENT, "instances is a plain list, but expecting list of objects as"
     " multiple input tensors required as per tensorinfo_map"),
    ("plain value, several inputs", b'{"inputs": [1, 2]}', TWO, None, Code.INVALID_ARGUMENT,
     "inputs is a plain value/list, but expecting an object as multiple input tensors"
     " required as per tensorinfo_map"),
    ("missing named input", b'{"inputs": {"a": [1.5]}}', TWO, None, Code.INVALID_ARGUMENT,
     "Missing named input: b in 'inputs' object."),
    ("row missing key", b'{"instances": [{"a": 1}]}', TWO, None, Code.INVALID_ARGUMENT,
     "Failed to process element: 0 of 'instances' list. JSON object: {\n    \"a\": 1\n}"
     " must only have keys: a,b"),
    ("row unknown key", b'{"instances": [{"a": 1, "b": 2}, {"a": 1, "c": 2}]}', TWO, None,
     Code.INVALID_ARGUMENT, "Failed to process element: 1 key: c of 'instances' list. Error:"
     " INVALID_ARGUMENT: JSON object: does not have named input: c"),
    ("row object then list", b'{"instances": [{"a": 1, "b": 2}, [1]]}', TWO, None,
     Code.INVALID_ARGUMENT, "Expecting object but got list at item 1 of input list"),
    ("row value then object", b'{"instances": [1, {"x": 2}]}', F32, None,
     Code.INVALID_ARGUMENT, "Expecting value/list but got object at item 1 of input list"),
    ("string for float", b'{"inputs": ["x"]}', F32, None, Code.INVALID_ARGUMENT,
     'JSON Value: "x" Type: String is not of expected type: float'),
    ("string for float, row", b'{"instances": ["x"]}', F32, None, Code.INVALID_ARGUMENT,
     BAD.format(0, 'JSON Value: "x" Type: String is not of expected type: float')),
    ("row key type error", b'{"instances": [{"a": 1, "b": 2.5}]}', TWO, None,
     Code.INVALID_ARGUMENT, "Failed to process element: 0 key: b of 'instances' list. Error:"
     " INVALID_ARGUMENT: JSON Value: 2.5 Type: Number is not of expected type: int64"),
    ("decimal for int", b'{"inputs": [1, 1.0]}', I64, None, Code.INVALID_ARGUMENT,
     "JSON Value: 1.0 Type: Number is not of expected type: int64"),
    ("bool for float", b'{"inputs": [true]}', F32, None, Code.INVALID_ARGUMENT,
     "JSON Value: true Type: True is not of expected type: float"),
    ("int for bool", b'{"inputs": [1]}', {"x": TensorSpecInfo("bool", None)}, None,
     Code.INVALID_ARGUMENT, "JSON Value: 1 Type: Number is not of expected type: bool"),
    ("null for string", b'{"inputs": [null]}', STR, None, Code.INVALID_ARGUMENT,
     "JSON Value: null Type: Null is not of expected type: string"),
    ("object for int", b'{"inputs": [{"b64": "QQ=="}]}', I64, None, Code.INVALID_ARGUMENT,
     'JSON Value: {\n    "b64": "QQ=="\n} Type: Object is not of expected type: int64'),
    ("int beyond float", b'{"inputs": [16777216]}', F32, None, Code.INVALID_ARGUMENT,
     "Cannot convert JSON value: 16777216 to float without loss of precision."),
    ("decimal beyond float", b'{"inputs": [1e39]}', F32, None, Code.INVALID_ARGUMENT,
     "Cannot convert JSON value: 1e+39 to float without loss of precision."),
    ("int beyond double", b'{"inputs": [9007199254740992]}',
     {"x": TensorSpecInfo("float64", None)}, None, Code.INVALID_ARGUMENT,
     "Cannot convert JSON value: 9007199254740992 to double without loss of precision."),
    ("int beyond int32", b'{"inputs": [2147483648]}', {"x": TensorSpecInfo("int32", None)},
     None, Code.INVALID_ARGUMENT,
     "JSON Value: 2147483648 Type: Number is not of expected type: int32"),
    ("int beyond int64", b'{"inputs": [9223372036854775808]}', I64, None,
     Code.INVALID_ARGUMENT,
     "JSON Value: 9223372036854775808 Type: Number is not of expected type: int64"),
    ("negative uint", b'{"inputs": [-1]}', {"x": TensorSpecInfo("uint32", None)}, None,
     Code.INVALID_ARGUMENT, "JSON Value: -1 Type: Number is not of expected type: uint32"),
    ("ragged size", b'{"inputs": [[1, 2], [3]]}', F32, None, Code.INVALID_ARGUMENT,
     "Encountered list at unexpected size: 1 at level: 1 expected size: 2"),
    ("ragged level", b'{"inputs": [[1, 2], 3]}', F32, None, Code.INVALID_ARGUMENT,
     "JSON Value: 3 found at incorrect level: 2 in the JSON DOM. Expected at level: 2"),
    ("ragged depth", b'{"inputs": [[1], [[2]]]}', F32, None, Code.INVALID_ARGUMENT,
     "Encountered list at unexpected level: 2 expected < 2"),
    ("row size mismatch", b'{"instances": [[1, 2], [3]]}', F32, None, Code.INVALID_ARGUMENT,
     BAD.format(1, "Expecting tensor size: 2 but got: 1")),
    ("row shape mismatch", b'{"instances": [[1, 2], [[3], [4]]]}', F32, None,
     Code.INVALID_ARGUMENT, BAD.format(1, "Expecting shape [2] but got: [2,1]")),
    ("row scalar vs list", b'{"instances": [1, [2]]}', F32, None, Code.INVALID_ARGUMENT,
     BAD.format(1, "Expecting shape [] but got: [1]")),
    ("row ragged element", b'{"instances": [[[1, 2], [3]]]}', F32, None,
     Code.INVALID_ARGUMENT,
     BAD.format(0, "Encountered list at unexpected size: 1 at level: 1 expected size: 2")),
    ("b64 not a string", b'{"inputs": [{"b64": 1}]}', STR, None, Code.INVALID_ARGUMENT,
     'JSON Value: {\n    "b64": 1\n} not formatted correctly for base64 data'),
    ("b64 extra key", b'{"inputs": [{"b64": "QQ==", "x": 1}]}', STR, None,
     Code.INVALID_ARGUMENT, 'JSON Value: {\n    "b64": "QQ==",\n    "x": 1\n}'
     " not formatted correctly for base64 data"),
    ("b64 undecodable", b'{"inputs": [{"b64": "QUJDR"}]}', STR, None, Code.INVALID_ARGUMENT,
     "Unable to base64 decode"),
    ("b64 in row", b'{"instances": [{"b64": "QQ=="}, {"b64": "Q!=="}]}', STR, None,
     Code.INVALID_ARGUMENT, BAD.format(1, "Unable to base64 decode")),
    ("b64 rows, several inputs", b'{"instances": [{"b64": "QQ=="}]}',
     {"a": TensorSpecInfo("string", None), "b": TensorSpecInfo("string", None)}, None,
     Code.INVALID_ARGUMENT, "input size does not match signature: 1!=2 len({a}) !="
     " len({a,b}). Sent extra: {}. Missing but required: {b}."),
    ("unsupported dtype", b'{"inputs": [1.5]}', HALF, None, Code.UNIMPLEMENTED,
     "Conversion of JSON Value: 1.5 to type: half"),
    ("unsupported dtype, row", b'{"instances": [1.5]}', HALF, None, Code.INVALID_ARGUMENT,
     "Failed to process element: 0 of 'instances' list. Error: UNIMPLEMENTED:"
     " Conversion of JSON Value: 1.5 to type: half"),
    ("nested nan stops the value text", b'{"inputs": [[1], {"a": [1, NaN]}]}', F32, None,
     Code.INVALID_ARGUMENT, 'JSON Value: {\n    "a": [\n        1,\n        '
     " found at incorrect level: 2 in the JSON DOM. Expected at level: 2"),
    ("rank against signature", b'{"instances": [[1, 2], [3, 4]]}',
     {"x": TensorSpecInfo("float32", (-1,))}, None, Code.INVALID_ARGUMENT,
     "Input: x has rank 2 (shape [2,2]) but the signature expects rank 1 (shape [-1],"
     " -1 = any size)"),
]


@pytest.mark.parametrize(
    "body, inputs, signature_names, code, text",
    [case[1:] for case in REQUEST_ERRORS], ids=[case[0] for case in REQUEST_ERRORS])
def test_request_error_texts(body, inputs, signature_names, code, text):
    error = failure(predict, body, inputs, signature_names)
    assert (error.code, error.message) == (code, text)
    assert str(error) == text


OUTPUT_ERRORS = [
    ("scalar", {"y": np.float32(1)}, "row", "Tensor name: y has no shape information "),
    ("batch mismatch", {"a": np.zeros(2), "b": np.zeros(3)}, "row",
     "Tensor name: b has inconsistent batch size: 3 expecting: 2"),
    ("empty batch", {"y": np.zeros((0, 2))}, "row", "Tensor name: y has invalid batch size: 0"),
    ("no outputs", {}, "row", "Cannot convert empty tensor map to JSON"),
    ("half", {"y": np.zeros(2, np.float16)}, "columnar",
     "Failed to write JSON value for tensor type: half"),
    ("uint16", {"y": np.zeros(2, np.uint16)}, "row",
     "Failed to write JSON value for tensor type: uint16"),
    ("format", {"y": np.zeros(2)}, "json", "Invalid request format"),
]


@pytest.mark.parametrize("outputs, request_format, text", [case[1:] for case in OUTPUT_ERRORS],
                         ids=[case[0] for case in OUTPUT_ERRORS])
def test_response_error_texts(outputs, request_format, text):
    error = failure(encode_predict_response, outputs, request_format)
    assert (error.code, error.message) == (Code.INVALID_ARGUMENT, text)


# ---------------------------------------------------------------------------------------------
# Top level


def test_signature_name_defaults_and_other_keys_are_ignored():
    for body in (b'{"instances": [1]}', b'{"signature_name": "", "instances": [1], "x": 2}'):
        request = parse_predict_request(body, {"serving_default"})
        assert request == PredictRequestJson("serving_default", "row", [1],
                                             request.requested_signature_name)
    named = parse_predict_request(b'{"signature_name": "rank", "inputs": {"a": 1}}', {"rank"})
    assert (named.signature_name, named.format, named.value) == ("rank", "columnar", {"a": 1})


def test_text_after_a_nul_byte_is_ignored_like_rapidjson():
    request = parse_predict_request(b'{"instances": [1]}\x00garbage')
    assert request.value == [1]


def test_surrogate_pairs_are_decoded_to_utf8():
    body = b'{"inputs": ["\\ud83d\\ude00", "\\\\ud800"]}'
    assert predict(body, STR)["x"].tolist() == ["😀".encode(), b"\\ud800"]


# ---------------------------------------------------------------------------------------------
# Decoding


ROUND_TRIP = [
    ("float32", [0.1, -2.5, 3.0, 16777215], "float32"),
    ("float64", [0.1, 1 / 3, -1e300, 9007199254740991], "float64"),
    ("int8", [-128, 0, 127], "int8"),
    ("int16", [-32768, 1, 32767], "int16"),
    ("int32", [-2147483648, 2147483647], "int32"),
    ("int64", [-9223372036854775808, 9223372036854775807, 2**53 + 1], "int64"),
    ("uint8", [0, 255], "uint8"),
    ("uint32", [0, 4294967295], "uint32"),
    ("uint64", [0, 18446744073709551615], "uint64"),
    ("bool", [True, False, True], "bool"),
    ("string", ["a", "é", ""], object),
]


@pytest.mark.parametrize("dtype, values, numpy_dtype", ROUND_TRIP, ids=[r[0] for r in ROUND_TRIP])
def test_each_dtype_round_trips(dtype, values, numpy_dtype):
    inputs = {"x": TensorSpecInfo(dtype, (-1,))}
    for out in (row(values, inputs), columnar(values, inputs)):
        array = out["x"]
        assert array.dtype == np.dtype(numpy_dtype) and array.shape == (len(values),)
        expected = [v.encode() for v in values] if dtype == "string" else values
        assert array.tolist() == (expected if dtype != "float32"
                                  else np.array(values, np.float32).tolist())
    for fmt, key in (("row", "predictions"), ("columnar", "outputs")):
        written = json.loads(encode_predict_response({"y": array}, fmt))[key]
        if dtype == "float32":
            assert np.array(written, np.float32).tolist() == array.tolist()
        else:
            assert written == values


def test_small_ints_wrap_like_tf_int_val():
    # DT_INT8/UINT8 accept any int32 (IsInt) and narrow it when the tensor is built.
    assert columnar([300, -1], {"x": TensorSpecInfo("uint8", None)})["x"].tolist() == [44, 255]
    assert columnar([200], {"x": TensorSpecInfo("int8", None)})["x"].tolist() == [-56]


def test_json_ints_are_accepted_for_floats_and_huge_ints_become_doubles():
    assert columnar([1, 2.5, -16777215])["x"].tolist() == [1.0, 2.5, -16777215.0]
    # rapidjson keeps integers beyond uint64 as doubles: a float input takes them (with loss).
    big = predict(b'{"inputs": [123456789012345678901234567890]}', F32)["x"]
    assert big.tolist() == [np.float32(1.2345679e29).item()]
    error = failure(predict, b'{"inputs": [123456789012345678901234567890]}', I64)
    assert error.message == ("JSON Value: 1.23456789e+29 Type: Number is not"
                             " of expected type: int64")


def test_nan_and_infinity_are_parsed_and_written_bare():
    out = predict(b'{"instances": [NaN, Infinity, -Infinity, 1]}', F32)["x"]
    assert math.isnan(out[0]) and out[1:].tolist() == [math.inf, -math.inf, 1.0]
    body = encode_predict_response({"y": out}, "row")
    assert body == b'{\n    "predictions": [NaN, Infinity, -Infinity, 1.0\n    ]\n}'


def test_large_int64_values_are_exact():
    values = [9223372036854775807, -9223372036854775808, 2**53 + 1]
    body = json.dumps({"inputs": {"ids": values}}).encode()
    out = predict(body, {"ids": TensorSpecInfo("int64", (-1,))})
    assert out["ids"].tolist() == values
    written = json.loads(encode_predict_response({"ids": out["ids"]}, "columnar"))
    assert written == {"outputs": values}


def test_b64_values_decode_to_bytes():
    raw = bytes(range(256))
    encoded = base64.b64encode(raw).decode()
    assert columnar({"b64": encoded}, STR)["x"].tolist() == raw  # a single b64 value
    out = row([{"b64": encoded}, "plain"], STR)["x"]
    assert out.tolist() == [raw, b"plain"] and out.dtype == object
    # absl::Base64Unescape: unpadded, whitespace and '.' padding are fine.
    assert columnar([{"b64": "QQ"}, {"b64": "Q Q\n=="}, {"b64": "QQ.."}], STR)["x"].tolist() == [
        b"A", b"A", b"A"]


def test_row_and_columnar_with_one_input():
    instances = [[1, 2], [3, 4], [5, 6]]
    by_row = row(instances)["x"]
    assert by_row.shape == (3, 2) and by_row.dtype == np.float32
    np.testing.assert_array_equal(columnar(instances)["x"], by_row)
    # one named input may also be written as objects / as an object
    np.testing.assert_array_equal(row([{"x": v} for v in instances])["x"], by_row)
    np.testing.assert_array_equal(columnar({"x": instances})["x"], by_row)
    assert columnar(7.5)["x"].shape == ()  # a scalar tensor, columnar only


def test_row_and_columnar_with_several_inputs():
    inputs = {"a": TensorSpecInfo("float32", (-1, 2)), "b": TensorSpecInfo("int64", (-1,)),
              "c": TensorSpecInfo("string", (-1,))}
    by_row = row([{"a": [1, 2], "b": 1, "c": "u1"}, {"c": "u2", "b": 2, "a": [3, 4]}], inputs)
    assert list(by_row) == ["a", "b", "c"]
    assert by_row["a"].tolist() == [[1, 2], [3, 4]] and by_row["b"].tolist() == [1, 2]
    assert by_row["c"].tolist() == [b"u1", b"u2"]
    # columnar: each input is a whole tensor; dim 0 may differ; extra keys are ignored
    by_col = columnar({"a": [[1, 2]], "b": [1, 2, 3], "c": ["u"], "extra": 1}, inputs)
    assert [by_col[k].shape for k in inputs] == [(1, 2), (3,), (1,)]


def test_two_dimensional_string_inputs():
    rng = random.Random(7)
    history = [[str(rng.randrange(10**6)) for _ in range(50)] for _ in range(300)]
    inputs = {"history": TensorSpecInfo("string", (-1, 50)),
              "user_id": TensorSpecInfo("string", (-1,))}
    body = {"instances": [{"history": h, "user_id": f"u{i}"} for i, h in enumerate(history)]}
    out = predict(body, inputs)
    assert out["history"].shape == (300, 50) and out["history"].dtype == object
    assert out["history"][17, 3] == history[17][3].encode()
    assert out["user_id"][299] == b"u299"
    # the same tensor in columnar format, and as base64
    out = columnar({"history": history, "user_id": ["a"] * 3}, inputs)
    assert out["history"].tolist() == [[v.encode() for v in h] for h in history]
    b64 = [[{"b64": base64.b64encode(v.encode()).decode()} for v in h] for h in history[:5]]
    out = columnar(b64, {"x": TensorSpecInfo("string", (-1, 50))})
    assert out["x"].tolist() == [[v.encode() for v in h] for h in history[:5]]


def test_empty_dimensions_keep_their_shape():
    assert columnar([])["x"].shape == (0,)
    assert row([[], []])["x"].shape == (2, 0)
    assert columnar([[], []], STR)["x"].shape == (2, 0)


# The fast path must accept exactly what the exact (TF-ordered) walk accepts.

LEAVES = [0, 1, -7, 2**24, 2**31, 2**40, 2**63, 2**70, 1.5, 1.0, 1e39, math.nan, math.inf,
          True, False, None, "a", "é", {"b64": "QQ=="}, {"b64": "Q"}, {"b64": "QUJD="},
          {"b64": 1}, {"b64": "QQ==", "x": 1}, {"x": 1}]
DTYPES = ["float32", "float64", "int8", "int32", "int64", "uint8", "uint32", "uint64", "bool",
          "string", "float16"]


def random_value(rng: random.Random, depth: int):
    leaf_type = rng.choice(LEAVES)
    if depth == 0 or rng.random() < 0.1:
        return leaf_type
    size = rng.randrange(0, 4)
    if rng.random() < 0.9:  # mostly dense lists of one leaf kind
        return [random_value_like(rng, depth - 1, leaf_type) for _ in range(size)]
    return [random_value(rng, depth - 1) for _ in range(size)]


def random_value_like(rng, depth, leaf):
    if depth == 0:
        return leaf if rng.random() < 0.97 else rng.choice(LEAVES)
    return [random_value_like(rng, depth - 1, leaf) for _ in range(2)]


def exact(value, dtype):
    shape = json_tensor._first_walk_shape(value)
    found: list = []
    json_tensor._fill(value, 0, shape, dtype, found)
    return json_tensor._to_array(found, shape, dtype)


def test_fast_path_agrees_with_the_exact_walk():
    rng = random.Random(1)
    accepted = 0
    for _ in range(3000):
        value = [random_value(rng, 3)]
        for dtype in DTYPES:
            fast = json_tensor._dense_fast(value, dtype)
            try:
                slow = exact(value, dtype)
            except ServingError:
                assert fast is None, (value, dtype)
                continue
            if dtype != "float16":
                assert fast is not None, (value, dtype)
            if fast is not None:
                accepted += 1
                assert fast.dtype == slow.dtype and fast.shape == slow.shape
                np.testing.assert_array_equal(fast, slow)
    assert accepted > 500


# ---------------------------------------------------------------------------------------------
# Encoding


def test_row_response_bytes_match_tf_serving():
    body = encode_predict_response({"y": np.array([3.5, 4.0, 5.5], np.float32)}, "row")
    assert body == b'{\n    "predictions": [3.5, 4.0, 5.5\n    ]\n}'
    body = encode_predict_response({"y": np.array([[1, 2], [3, 4]], np.int64)}, "row")
    assert body == b'{\n    "predictions": [[1, 2], [3, 4]\n    ]\n}'
    body = encode_predict_response(
        {"score": np.array([0.5, 1], np.float32), "ids": np.array([[1, 2], [3, 4]])}, "row")
    assert body.decode() == (
        '{\n    "predictions": [\n'
        '        {\n            "score": 0.5,\n            "ids": [1, 2]\n        },\n'
        '        {\n            "score": 1.0,\n            "ids": [3, 4]\n        }\n'
        "    ]\n}")


def test_columnar_response_bytes_match_tf_serving():
    body = encode_predict_response({"y": np.array([[1, 2]], np.float32)}, "columnar")
    assert body.decode() == (
        '{\n    "outputs": [\n        [\n            1.0,\n            2.0\n        ]\n    ]\n}')
    body = encode_predict_response({"a": np.array(True), "b": np.array([], np.int32)},
                                   "columnar")
    assert body.decode() == '{\n    "outputs": {\n        "a": true,\n        "b": []\n    }\n}'


def test_floats_are_written_like_write_decimal():
    values = np.array([0.1, 4, 9e6, 3e-5, 0.123456789, 1 / 3, -0.0, 1e-45], np.float32)
    written = encode_predict_response({"y": values}, "row").decode()
    assert written == ('{\n    "predictions": [0.1, 4.0, 9e+06, 3e-05, 0.123456791, 0.333333343,'
                       ' -0.0, 1.4013e-45\n    ]\n}')
    doubles = np.array([0.1, 1 / 3, 1e300])
    assert json.loads(encode_predict_response({"y": doubles}, "row"))["predictions"] == [
        0.1, 1 / 3, 1e300]
    assert b"0.33333333333333331" in encode_predict_response({"y": doubles}, "row")


def test_string_outputs_and_bytes_suffix():
    strings = np.array(["tab\there", "é", 'q"\\'], dtype=object)
    payload = np.array([b"\x00\xff", b"ok"], dtype=object)
    body = encode_predict_response(
        {"title": strings, "thumb_bytes": np.array([b"\x00\xff", b"ok", b""], dtype=object)},
        "columnar")
    parsed = json.loads(body)["outputs"]
    assert parsed["title"] == ["tab\there", "é", 'q"\\']
    assert [base64.b64decode(v["b64"]) for v in parsed["thumb_bytes"]] == [b"\x00\xff", b"ok",
                                                                        b""]
    assert "é".encode() in body  # raw UTF-8, as rapidjson writes it
    # non-UTF-8 bytes in an output without the suffix: base64 instead of broken JSON
    parsed = json.loads(encode_predict_response({"raw": payload}, "row"))["predictions"]
    assert parsed == [{"b64": "AP8="}, "ok"]
    body = encode_predict_response({"x_bytes": np.array([b"a"], dtype=object)}, "row")
    assert body == b'{\n    "predictions": [{\n            "b64": "YQ=="\n        }\n    ]\n}'


def test_bytes_round_trip_through_b64():
    raw = [bytes([i, 255 - i, 0]) for i in range(20)]
    body = {"instances": [{"b64": base64.b64encode(r).decode()} for r in raw]}
    decoded = predict(body, {"image_bytes": TensorSpecInfo("string", (-1,))})["image_bytes"]
    written = json.loads(encode_predict_response({"image_bytes": decoded}, "row"))
    assert written["predictions"] == body["instances"]


# ---------------------------------------------------------------------------------------------
# serving.errors


def test_codes_map_to_http_and_grpc():
    assert [(c.name, int(c)) for c in Code][:4] == [
        ("OK", 0), ("CANCELLED", 1), ("UNKNOWN", 2), ("INVALID_ARGUMENT", 3)]
    assert int(Code.UNAUTHENTICATED) == 16
    statuses = {c: c.http_status for c in Code}
    assert statuses[Code.INVALID_ARGUMENT] == statuses[Code.FAILED_PRECONDITION] == 400
    assert (statuses[Code.NOT_FOUND], statuses[Code.UNIMPLEMENTED], statuses[Code.CANCELLED],
            statuses[Code.RESOURCE_EXHAUSTED], statuses[Code.DEADLINE_EXCEEDED]) == (
        404, 501, 499, 429, 504)
    for code in Code:
        assert code.grpc_status == getattr(grpc.StatusCode, code.name)
        assert code.grpc_status.value[0] == int(code)


def test_error_body_is_tf_servings_pretty_json():
    message = 'Serving signature name: "predict" not found in signature def'
    assert json_error_body(message) == json.dumps({"error": message}, indent=4).encode()
    assert json_error_body(message) == (
        b'{\n    "error": "Serving signature name: \\"predict\\" not found in signature def"\n}')
    assert json_error_body("é\x1f") == '{\n    "error": "é\\u001F"\n}'.encode()
    error = ServingError(Code.NOT_FOUND, "Servable not found for request: Latest(m)")
    assert (str(error), error.code, error.code.http_status) == (
        "Servable not found for request: Latest(m)", Code.NOT_FOUND, 404)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.code, copy.message) == (error.code, error.message)


def test_the_codec_does_not_import_tensorflow():
    code = ("import sys, serving.json_codec, serving.errors; "
            "assert 'tensorflow' not in sys.modules and 'grpc' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
