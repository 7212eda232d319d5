"""Warm-up requests: ``<version_dir>/assets.extra/tf_serving_warmup_requests``, as TF Serving.

The file is a TFRecord file of serialized ``tensorflow.serving.PredictionLog`` protos; the
server replays each record's request before the version is served, and any failure fails the
version load. Guarantees of ``read_warmup_requests`` (TF Serving's ``RunSavedModelWarmup``):

* no file: no requests (warm-up is optional);
* the records are read with TensorFlow's own record reader, so what counts as a truncated or
  corrupt file is what TF Serving decides; such a file is ``DATA_LOSS`` whose message ends in
  ``. Please verify your warmup data is in TFRecord format.``; an empty file has no records;
* a record that is not a ``PredictionLog``: ``INVALID_ARGUMENT``
  ``Failed to parse warmup record: <record> from <path>``;
* more than ``MAX_RECORDS`` records: ``INVALID_ARGUMENT``
  ``Number of warmup records exceeds the maximum (1000) at <path>``;
* ``session_run_log``, ``predict_streamed_log`` or no log at all: ``UNIMPLEMENTED``
  ``Unsupported log_type for warmup: <field number>`` (the TFRT servable's rule);
* ``classify_log``, ``regress_log`` and ``multi_inference_log`` are valid in TF Serving but not
  replayed by this server yet: ``UNIMPLEMENTED``, naming the log type.

``write_warmup_requests`` writes such a file (the exporter uses it), atomically.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import recsys  # noqa: F401  (Keras 2 before TensorFlow)

# isort: split
import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from serving.errors import Code, ServingError

__all__ = ["WARMUP_FILE", "MAX_RECORDS", "read_warmup_requests", "write_warmup_requests"]

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_RECORDS = 1000  # WarmupConsts::kMaxNumRecords

_NOT_REPLAYED = ("classify_log", "regress_log", "multi_inference_log")
_SHOWN_RECORD_CHARS = 200


def _records(path: Path) -> Iterable[bytes]:
    """The records of the TFRecord file at ``path``, read by TF's ``RecordReader``."""
    from tensorflow.python.util import deprecation

    with deprecation.silence():  # tf.data would wrap its errors in op/function names
        return tf.compat.v1.io.tf_record_iterator(str(path))


def _shown(record: bytes) -> str:
    text = record[:_SHOWN_RECORD_CHARS].decode("utf-8", "backslashreplace")
    return text + ("..." if len(record) > _SHOWN_RECORD_CHARS else "")


def _request(log: prediction_log_pb2.PredictionLog, index: int,
             path: Path) -> predict_pb2.PredictRequest:
    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        return log.predict_log.request
    if kind in _NOT_REPLAYED:
        raise ServingError(Code.UNIMPLEMENTED,
                           f"Unsupported log_type for warmup in this server: {kind} (record "
                           f"{index} of {path}); only predict_log records can be replayed, "
                           f"so write the warm-up requests as PredictRequests")
    number = log.DESCRIPTOR.fields_by_name[kind].number if kind else 0
    raise ServingError(Code.UNIMPLEMENTED, f"Unsupported log_type for warmup: {number}")


def read_warmup_requests(version_dir: Path) -> list[predict_pb2.PredictRequest]:
    """The warm-up ``PredictRequest``s of the version at ``version_dir``, in file order.

    Raises:
        ServingError: ``DATA_LOSS`` (not a TFRecord file), ``INVALID_ARGUMENT`` (a record is
            not a ``PredictionLog``, or there are more than ``MAX_RECORDS``),
            ``UNIMPLEMENTED`` (a log type this server does not replay), or the code of any
            other read failure.
    """
    path = Path(version_dir) / WARMUP_FILE
    if not path.exists():
        return []
    requests = []
    try:
        for index, record in enumerate(_records(path)):
            if index >= MAX_RECORDS:
                raise ServingError(Code.INVALID_ARGUMENT, f"Number of warmup records exceeds "
                                   f"the maximum ({MAX_RECORDS}) at {path}")
            log = prediction_log_pb2.PredictionLog()
            try:
                log.ParseFromString(record)
            except DecodeError as exc:
                raise ServingError(Code.INVALID_ARGUMENT, f"Failed to parse warmup record: "
                                   f"{_shown(record)} from {path}") from exc
            requests.append(_request(log, index, path))
    except tf.errors.DataLossError as exc:
        raise ServingError(Code.DATA_LOSS, f"{exc.message}. Please verify your warmup data is "
                           f"in TFRecord format.") from exc
    except tf.errors.OpError as exc:
        code = Code(exc.error_code) if exc.error_code in set(Code) else Code.UNKNOWN
        raise ServingError(code, f"{exc.message} (reading {path})") from exc
    return requests


def write_warmup_requests(version_dir: Path,
                          requests: Iterable[predict_pb2.PredictRequest]) -> Path:
    """Write ``requests`` as the warm-up file of ``version_dir``; returns the file's path.

    Each request becomes ``PredictionLog(predict_log=PredictLog(request=...))``. The file is
    written next to its final name and renamed, so a reader never sees half a file.

    Raises:
        TypeError: an element of ``requests`` is not a ``PredictRequest``.
        ValueError: more than ``MAX_RECORDS`` requests (TF Serving would refuse the file).
    """
    logs = []
    for index, request in enumerate(requests):
        if not isinstance(request, predict_pb2.PredictRequest):
            raise TypeError(f"requests[{index}] is a {type(request).__name__}; warm-up "
                            f"requests must be tensorflow_serving PredictRequest protos")
        logs.append(prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)))
    if len(logs) > MAX_RECORDS:
        raise ValueError(f"{len(logs)} warm-up requests given; TF Serving accepts at most "
                         f"{MAX_RECORDS}, so pass fewer")
    path = Path(version_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        with tf.io.TFRecordWriter(str(partial)) as writer:
            for log in logs:
                writer.write(log.SerializeToString())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
