"""Tests of serving.warmup: TF Serving's warm-up file, written and read back."""

from __future__ import annotations

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow is imported)

# isort: split
from pathlib import Path

import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    predict_pb2,
    prediction_log_pb2,
    regression_pb2,
)

from serving.errors import Code, ServingError
from serving.warmup import MAX_RECORDS, WARMUP_FILE, read_warmup_requests, write_warmup_requests

PL = prediction_log_pb2


def _request(name: str, users: list[bytes],
             scores: list[list[float]]) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = "serving_default"
    request.inputs["user_id"].CopyFrom(tf.make_tensor_proto(users))
    request.inputs["scores"].CopyFrom(tf.make_tensor_proto(scores, dtype=tf.float32))
    return request


def _write_records(version_dir: Path, records: list[bytes]) -> Path:
    path = version_dir / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return path


def _error(version_dir: Path) -> ServingError:
    with pytest.raises(ServingError) as info:
        read_warmup_requests(version_dir)
    return info.value


def test_round_trip_of_string_and_float_requests(tmp_path: Path) -> None:
    requests = [
        _request("movies", [b"u1", b"u2"], [[0.5, 1.0], [2.0, -3.25]]),
        _request("movies", ["ü".encode()], [[1e-3, 7.0]]),
        predict_pb2.PredictRequest(),
    ]
    path = write_warmup_requests(tmp_path / "1", requests)

    assert path == tmp_path / "1" / "assets.extra" / "tf_serving_warmup_requests"
    assert read_warmup_requests(tmp_path / "1") == requests
    # Independently of our reader: one PredictionLog(predict_log=...) per record, in order.
    logs = [PL.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]
    assert [log.WhichOneof("log_type") for log in logs] == ["predict_log"] * 3
    assert [log.predict_log.request for log in logs] == requests
    assert tf.make_ndarray(logs[0].predict_log.request.inputs["user_id"]).tolist() == [b"u1",
                                                                                       b"u2"]
    assert list(path.parent.iterdir()) == [path]  # no partial file left behind


def test_write_replaces_an_existing_file(tmp_path: Path) -> None:
    write_warmup_requests(tmp_path, [_request("a", [b"x"], [[1.0]])] * 3)
    write_warmup_requests(tmp_path, [_request("b", [b"y"], [[2.0]])])
    assert [r.model_spec.name for r in read_warmup_requests(tmp_path)] == ["b"]


def test_write_checks_its_arguments(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"requests\[1\] is a PredictionLog"):
        write_warmup_requests(tmp_path, [predict_pb2.PredictRequest(), PL.PredictionLog()])
    with pytest.raises(ValueError, match="1001 warm-up requests given; TF Serving accepts at "
                                         "most 1000"):
        write_warmup_requests(tmp_path, [predict_pb2.PredictRequest()] * 1001)
    assert not (tmp_path / WARMUP_FILE).exists()


def test_absent_file_means_no_requests(tmp_path: Path) -> None:
    assert read_warmup_requests(tmp_path) == []
    assert read_warmup_requests(tmp_path / "no_such_version") == []


def test_empty_file_has_no_requests(tmp_path: Path) -> None:
    (tmp_path / "assets.extra").mkdir()
    (tmp_path / WARMUP_FILE).write_bytes(b"")
    assert read_warmup_requests(tmp_path) == []


def test_at_most_1000_records(tmp_path: Path) -> None:
    record = PL.PredictionLog(predict_log=PL.PredictLog()).SerializeToString()
    _write_records(tmp_path / "1", [record] * MAX_RECORDS)
    assert len(read_warmup_requests(tmp_path / "1")) == MAX_RECORDS == 1000

    path = _write_records(tmp_path / "2", [record] * (MAX_RECORDS + 1))
    error = _error(tmp_path / "2")
    assert error.code == Code.INVALID_ARGUMENT
    assert error.message == f"Number of warmup records exceeds the maximum (1000) at {path}"


@pytest.mark.parametrize("content", [
    b"this is not a TFRecord file, just some text\n",
    # TF Serving's UnsupportedFileFormat case: serialized protos with no TFRecord framing.
    PL.PredictionLog(predict_log=PL.PredictLog(request=_request("m", [b"u"], [[1.0]])))
    .SerializeToString() * 10,
])
def test_non_tfrecord_file_is_data_loss(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "assets.extra").mkdir()
    (tmp_path / WARMUP_FILE).write_bytes(content)
    error = _error(tmp_path)
    assert error.code == Code.DATA_LOSS
    assert error.message.startswith("corrupted record at 0")
    assert error.message.endswith(". Please verify your warmup data is in TFRecord format.")


def test_truncated_file_is_data_loss(tmp_path: Path) -> None:
    path = write_warmup_requests(tmp_path, [_request("m", [b"u"], [[1.0]])] * 2)
    path.write_bytes(path.read_bytes()[:-5])
    error = _error(tmp_path)
    assert error.code == Code.DATA_LOSS
    assert error.message.startswith("truncated record at ")
    assert error.message.endswith(". Please verify your warmup data is in TFRecord format.")


def test_unparsable_record(tmp_path: Path) -> None:
    good = PL.PredictionLog(predict_log=PL.PredictLog()).SerializeToString()
    path = _write_records(tmp_path, [good, b"\xffnot a proto"])
    error = _error(tmp_path)
    assert error.code == Code.INVALID_ARGUMENT
    assert error.message == f"Failed to parse warmup record: \\xffnot a proto from {path}"


@pytest.mark.parametrize("log, number", [
    (PL.PredictionLog(session_run_log=PL.SessionRunLog()), 5),
    (PL.PredictionLog(predict_streamed_log=PL.PredictStreamedLog()), 7),
    (PL.PredictionLog(), 0),
])
def test_unsupported_log_type(tmp_path: Path, log: PL.PredictionLog, number: int) -> None:
    _write_records(tmp_path, [log.SerializeToString()])
    error = _error(tmp_path)
    assert error.code == Code.UNIMPLEMENTED
    assert error.message == f"Unsupported log_type for warmup: {number}"


@pytest.mark.parametrize("log, kind", [
    (PL.PredictionLog(classify_log=PL.ClassifyLog(
        request=classification_pb2.ClassificationRequest())), "classify_log"),
    (PL.PredictionLog(regress_log=PL.RegressLog(
        request=regression_pb2.RegressionRequest())), "regress_log"),
    (PL.PredictionLog(multi_inference_log=PL.MultiInferenceLog(
        request=inference_pb2.MultiInferenceRequest())), "multi_inference_log"),
])
def test_logs_this_server_does_not_replay(tmp_path: Path, log: PL.PredictionLog,
                                          kind: str) -> None:
    path = _write_records(tmp_path, [log.SerializeToString()])
    error = _error(tmp_path)
    assert error.code == Code.UNIMPLEMENTED
    assert error.message.startswith(f"Unsupported log_type for warmup in this server: {kind} "
                                    f"(record 0 of {path})")
