"""``TensorProto`` <-> NumPy for the gRPC APIs, at a fraction of ``tf.make_tensor_proto`` /
``tf.make_ndarray``'s cost per call (their generic Python paths took 0.38 and 0.18 ms for the
22 inputs of one retrieval query, 2 ms to encode the ranker's 200 rows).

Guarantees: ``to_ndarray(p)`` equals ``tf.make_ndarray(p)`` (values, dtype and shape) for
every proto, and ``from_ndarray(a)`` equals ``tf.make_tensor_proto(a)`` for every array (tests
hold both to TensorFlow's functions); the fast paths cover the dense numeric, boolean and
string tensors TF Serving clients send (``tensor_content``, the typed ``*_val`` fields with
one value per element, ``string_val``), and anything else (half floats, complex numbers, a
typed field shorter than the shape, which TensorFlow broadcasts) goes to TensorFlow's own
functions.
"""

from __future__ import annotations

import math

import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

_NUMERIC = {  # DataType -> (NumPy dtype, the typed field TF writes values of that type to)
    types_pb2.DT_FLOAT: (np.dtype(np.float32), "float_val"),
    types_pb2.DT_DOUBLE: (np.dtype(np.float64), "double_val"),
    types_pb2.DT_INT32: (np.dtype(np.int32), "int_val"),
    types_pb2.DT_INT16: (np.dtype(np.int16), "int_val"),
    types_pb2.DT_INT8: (np.dtype(np.int8), "int_val"),
    types_pb2.DT_UINT8: (np.dtype(np.uint8), "int_val"),
    types_pb2.DT_UINT16: (np.dtype(np.uint16), "int_val"),
    types_pb2.DT_INT64: (np.dtype(np.int64), "int64_val"),
    types_pb2.DT_UINT32: (np.dtype(np.uint32), "uint32_val"),
    types_pb2.DT_UINT64: (np.dtype(np.uint64), "uint64_val"),
    types_pb2.DT_BOOL: (np.dtype(np.bool_), "bool_val"),
}
_DATA_TYPE = {dtype: data_type for data_type, (dtype, _) in _NUMERIC.items()}
# the types TensorFlow writes as raw bytes (tensor_content) when a tensor has 2+ elements
_CONTENT = frozenset(_DATA_TYPE) - {np.dtype(np.uint16), np.dtype(np.bool_)}


def to_ndarray(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """The array ``proto`` holds (what ``tf.make_ndarray`` gives)."""
    shape = tuple(d.size for d in proto.tensor_shape.dim)
    count = math.prod(shape)
    if proto.dtype == types_pb2.DT_STRING:
        values = proto.string_val
        if len(values) == count:
            array = np.empty(count, dtype=object)
            array[:] = list(values)
            return array.reshape(shape)
    elif proto.dtype in _NUMERIC:
        dtype, field = _NUMERIC[proto.dtype]
        if proto.tensor_content:
            if len(proto.tensor_content) == count * dtype.itemsize:
                return np.frombuffer(proto.tensor_content, dtype=dtype).reshape(shape).copy()
        else:
            values = getattr(proto, field)
            if len(values) == count:
                return np.array(values, dtype=dtype).reshape(shape)
    import tensorflow as tf

    return tf.make_ndarray(proto)


def from_ndarray(value) -> tensor_pb2.TensorProto:
    """A ``TensorProto`` of ``value`` (what ``tf.make_tensor_proto`` gives)."""
    array = np.asarray(value)
    proto = tensor_pb2.TensorProto()
    if array.dtype in _DATA_TYPE:
        data_type = _DATA_TYPE[array.dtype]
        proto.dtype = data_type
        proto.tensor_shape.CopyFrom(_shape(array.shape))
        if array.size > 1 and array.dtype in _CONTENT:  # as TensorFlow writes them
            proto.tensor_content = np.ascontiguousarray(array).tobytes()
        else:
            getattr(proto, _NUMERIC[data_type][1]).extend(array.ravel().tolist())
        return proto
    if array.dtype.kind in "OSU":
        flat = array.ravel().tolist()
        if all(type(x) is bytes for x in flat):
            proto.string_val.extend(flat)
        elif all(type(x) is str for x in flat):
            proto.string_val.extend(x.encode("utf-8") for x in flat)
        else:
            flat = None
        if flat is not None:
            proto.dtype = types_pb2.DT_STRING
            proto.tensor_shape.CopyFrom(_shape(array.shape))
            return proto
    import tensorflow as tf

    return tf.make_tensor_proto(value)


def _shape(shape: tuple[int, ...]) -> tensor_shape_pb2.TensorShapeProto:
    return tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in shape])


__all__ = ["to_ndarray", "from_ndarray"]
