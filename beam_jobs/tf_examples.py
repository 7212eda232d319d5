"""Training examples as ``tf.train.Example`` records, for trainers that read TFRecord.

Mapping: strings -> bytes_list (UTF-8), ints and timestamps (microseconds) -> int64_list,
floats -> float_list, lists by their element type; a missing value (None) leaves the feature out,
as tf.Example expects; a missing element of a string list (an item without a category) is "".
The schema is the Parquet schema of ``training_examples``.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from beam_jobs.outputs import TRAINING_EXAMPLES


def _feature(pb, kind: pa.DataType, value: Any):
    values = value if isinstance(value, (list, tuple)) else [value]
    base = kind.value_type if pa.types.is_list(kind) else kind
    if pa.types.is_string(base):
        return pb.Feature(bytes_list=pb.BytesList(
            value=[("" if v is None else v).encode() for v in values]))
    if pa.types.is_floating(base):
        return pb.Feature(float_list=pb.FloatList(value=values))
    return pb.Feature(int64_list=pb.Int64List(value=values))


def to_tf_example(row: dict) -> bytes:
    """One training-example row (as the Beam job emits it) -> serialized tf.train.Example."""
    from tensorflow.core.example import example_pb2, feature_pb2

    features = {
        field.name: _feature(feature_pb2, field.type, row[field.name])
        for field in TRAINING_EXAMPLES if row.get(field.name) is not None
    }
    return example_pb2.Example(
        features=feature_pb2.Features(feature=features)).SerializeToString()
