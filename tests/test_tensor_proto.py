"""The gRPC APIs' TensorProto codec equals TensorFlow's own functions: protos built from
arrays equal ``tf.make_tensor_proto``'s, arrays read from protos equal ``tf.make_ndarray``'s,
for every dtype and shape TF Serving clients send, and for the odd ones that take
TensorFlow's path (typed fields TensorFlow broadcasts, half floats, mixed objects)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from serving.tensor_proto import from_ndarray, to_ndarray

ARRAYS = [
    np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
    np.array([1.5], dtype=np.float32),
    np.array(2.25, dtype=np.float64),
    np.array([], dtype=np.float32).reshape(0, 3),
    np.array([[np.nan, -np.inf, 3.0]], dtype=np.float64),
    np.arange(-5, 5, dtype=np.int64).reshape(2, 5),
    np.array([7], dtype=np.int64),
    np.array([[1, -2], [3, 2**31 - 1]], dtype=np.int32),
    np.array([200, 3], dtype=np.uint8),
    np.array([-100, 3], dtype=np.int8),
    np.array([-300, 3], dtype=np.int16),
    np.array([60000, 3], dtype=np.uint16),
    np.array([2**32 - 1, 3], dtype=np.uint32),
    np.array([2**63, 3], dtype=np.uint64),
    np.array([True, False, True]),
    np.array([[b"i0001", b""], [b"\xff\x00", b"x"]], dtype=object),
    np.array(["caf\u00e9", "", "us"], dtype=object),
    np.array([["a", "bc"]]),  # unicode dtype
    np.array([b"ab", b"c"]),  # fixed-width bytes
    np.array([b"only"], dtype=object),
    np.array([1.0, 2.0], dtype=np.float16),  # half_val: TensorFlow's path
]


def _same(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.dtype == expected.dtype and got.shape == expected.shape
    if got.dtype == object:
        assert got.tolist() == expected.tolist()
    else:
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype}{list(a.shape)}")
def test_protos_equal_tensorflows_and_read_back_the_same(array):
    proto = from_ndarray(array)
    assert proto == tf.make_tensor_proto(array)
    _same(to_ndarray(proto), tf.make_ndarray(tf.make_tensor_proto(array)))


def _typed(data_type, shape, field, values):
    proto = tensor_pb2.TensorProto(dtype=data_type)
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    getattr(proto, field).extend(values)
    return proto


@pytest.mark.parametrize("proto", [
    _typed(types_pb2.DT_FLOAT, [2, 2], "float_val", [1.0, 2.0, 3.5, -1.0]),
    _typed(types_pb2.DT_FLOAT, [2, 3], "float_val", [1.5]),  # broadcast by TensorFlow
    _typed(types_pb2.DT_INT64, [3], "int64_val", [1, 2, 3]),
    _typed(types_pb2.DT_INT32, [], "int_val", [9]),
    _typed(types_pb2.DT_BOOL, [2], "bool_val", [True, False]),
    _typed(types_pb2.DT_STRING, [2], "string_val", [b"a", b"b"]),
    _typed(types_pb2.DT_STRING, [3], "string_val", [b"same"]),  # broadcast
    _typed(types_pb2.DT_DOUBLE, [0], "double_val", []),
], ids=lambda p: f"{types_pb2.DataType.Name(p.dtype)}")
def test_typed_fields_read_like_tensorflow(proto):
    _same(to_ndarray(proto), tf.make_ndarray(proto))


def test_a_mixed_object_array_is_refused_as_tensorflow_refuses_it():
    with pytest.raises(TypeError):
        from_ndarray(np.array(["a", 3], dtype=object))
