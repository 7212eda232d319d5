"""Model lifecycle as TF Serving runs it: version policies, new versions picked up while
clients call, a corrupt version that never takes down the one being served, labels and
rollback."""

from __future__ import annotations

import json
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from serving_support import config_text, export_small_models, start_server
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from recsys.model_contract.arrays import to_arrays
from recsys.model_contract.feature_spec import query_inputs
from trainer.model_dir import ModelDir

PORTABLE = "retrieval_portable"


@pytest.fixture(scope="module")
def exported(trained_model_dir, small_repo, small_data, tmp_path_factory):
    base = tmp_path_factory.mktemp("exported")
    export_small_models(trained_model_dir, small_repo, base)
    cfg, _, _ = ModelDir(trained_model_dir).restore()
    queries = to_arrays(small_data.test.head(2), query_inputs(cfg.model))
    return base / PORTABLE / "1", queries


def _publish(source, base, version):
    """Copy a version in atomically, as `recsys export` publishes one."""
    staging = base / f".tmp-{version}"
    shutil.copytree(source, staging)
    staging.rename(base / str(version))


def _wait_for(predicate, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def _states(server, name):
    body = requests.get(f"http://127.0.0.1:{server.rest_port}/v1/models/{name}", timeout=30)
    return {int(s["version"]): (s["state"], s["status"]["error_message"])
            for s in body.json()["model_version_status"]}


def _grpc_predict(stub, queries, version=None, label=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = PORTABLE
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for name, value in queries.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return stub.Predict(request, timeout=30)


def test_new_version_under_load_then_a_corrupt_one(exported, tmp_path):
    source, queries = exported
    base = tmp_path / PORTABLE
    base.mkdir()
    _publish(source, base, 1)
    server = start_server(model_name=PORTABLE, model_base_path=str(base))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
    failures, versions_seen, stop = [], set(), threading.Event()

    def client():
        while not stop.is_set():
            try:
                versions_seen.add(_grpc_predict(stub, queries).model_spec.version.value)
            except grpc.RpcError as exc:  # any failure fails the test
                failures.append(exc.details())

    try:
        clients = [threading.Thread(target=client) for _ in range(20)]
        for thread in clients:
            thread.start()
        time.sleep(1.0)
        _publish(source, base, 2)
        _wait_for(lambda: _states(server, PORTABLE).get(2, ("",))[0] == "AVAILABLE")
        _wait_for(lambda: _states(server, PORTABLE).get(1, ("",))[0] == "END")
        _wait_for(lambda: 2 in versions_seen)

        corrupt = base / "3"
        corrupt.mkdir()
        (corrupt / "saved_model.pb").write_bytes(b"this is not a SavedModel")
        # wait past LOADING: the status first shows 3 while it is being loaded
        state, error = _wait_for(lambda: (_states(server, PORTABLE).get(3, ("",))[0] == "END"
                                          and _states(server, PORTABLE)[3]))
        assert state == "END" and error, error
        time.sleep(1.5)  # keep calling across another poll
        stop.set()
        for thread in clients:
            thread.join(timeout=30)
        assert failures == []
        assert versions_seen == {1, 2}
        assert _states(server, PORTABLE)[2] == ("AVAILABLE", "")
        assert _grpc_predict(stub, queries).model_spec.version.value == 2
    finally:
        stop.set()
        server.stop()


def test_policies_labels_and_rollback(exported, tmp_path):
    source, queries = exported
    base = tmp_path / PORTABLE
    base.mkdir()
    for version in (1, 2, 3):
        _publish(source, base, version)
    (base / "latest").mkdir()  # not a version: ignored
    config = tmp_path / "models.config"
    config.write_text(config_text({PORTABLE: base}, {PORTABLE: "latest { num_versions: 2 }"},
                                  {PORTABLE: {"stable": 2, "canary": 3}}))
    server = start_server(model_config_file=str(config),
                          model_config_file_poll_wait_seconds=1)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
    try:
        assert {v: s for v, (s, _) in _states(server, PORTABLE).items()} == {
            2: "AVAILABLE", 3: "AVAILABLE"}
        assert _grpc_predict(stub, queries).model_spec.version.value == 3
        assert _grpc_predict(stub, queries, label="stable").model_spec.version.value == 2
        # what the retraining controller asks before it sends users to a label
        from workflows.controller.label_status import label_version

        rest = f"http://127.0.0.1:{server.rest_port}"
        assert label_version(rest, PORTABLE, "stable") == 2
        assert label_version(rest, PORTABLE, "canary") == 3
        assert label_version(rest, PORTABLE, "nope") is None
        assert label_version(rest, "no_such_model", "stable") is None
        # the recommendation service's client for an arm with model_label: stable
        from serving.recommendations.model_clients import GrpcModelClient

        labelled = GrpcModelClient(f"127.0.0.1:{server.grpc_port}", label="stable")
        try:
            assert labelled.predict(PORTABLE, "retrieval", queries, 30.0).version == 2
        finally:
            labelled.close()
        assert _grpc_predict(stub, queries, version=2).model_spec.version.value == 2
        with pytest.raises(grpc.RpcError) as exc:
            _grpc_predict(stub, queries, version=1)
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND

        # Roll back: serve exactly version 1 and point "stable" at it, by editing the config.
        config.write_text(config_text({PORTABLE: base}, {PORTABLE: "specific { versions: 1 }"},
                                      {PORTABLE: {"stable": 1}}))
        _wait_for(lambda: _states(server, PORTABLE).get(1, ("",))[0] == "AVAILABLE")
        _wait_for(lambda: _grpc_predict(stub, queries).model_spec.version.value == 1)
        _wait_for(lambda: _states(server, PORTABLE)[3][0] == "END")
        assert _grpc_predict(stub, queries, label="stable").model_spec.version.value == 1
        response = requests.post(
            f"http://127.0.0.1:{server.rest_port}/v1/models/{PORTABLE}/labels/stable:predict",
            data=json.dumps({"inputs": {k: v.tolist() for k, v in queries.items()}})
            .replace("NaN", "NaN"), timeout=30)
        assert response.status_code == 200, response.text
    finally:
        server.stop()


def test_a_label_on_a_version_that_is_not_loaded_is_refused(exported, tmp_path):
    source, _ = exported
    base = tmp_path / PORTABLE
    base.mkdir()
    _publish(source, base, 1)
    config = tmp_path / "models.config"
    config.write_text(config_text({PORTABLE: base}, labels={PORTABLE: {"stable": 5}}))
    from serving.errors import ServingError

    with pytest.raises(ServingError, match="Request to assign label to version 5 of model "
                                           "retrieval_portable, which is not currently "
                                           "available for inference"):
        start_server(model_config_file=str(config))


def test_startup_fails_when_no_version_loads(tmp_path):
    base = tmp_path / "broken"
    (base / "1").mkdir(parents=True)
    (base / "1" / "saved_model.pb").write_bytes(b"garbage")
    from serving.errors import ServingError

    with pytest.raises(ServingError, match="1 servable\\(s\\) did not become available"):
        start_server(model_name="broken", model_base_path=str(base))


def test_warmup_requests_run_before_a_version_is_served(exported, tmp_path):
    source, queries = exported
    base = tmp_path / PORTABLE
    base.mkdir()
    shutil.copytree(source, base / "1")
    from serving.warmup import write_warmup_requests

    request = predict_pb2.PredictRequest()
    request.model_spec.name = PORTABLE
    request.model_spec.signature_name = "retrieval"
    for name, value in queries.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    write_warmup_requests(base / "1", [request])
    server = start_server(model_name=PORTABLE, model_base_path=str(base),
                          num_request_iterations_for_warmup=3)
    try:
        page = server.metrics.render()
        assert ":tensorflow:serving:model_warmup_latency_count" in page
        assert 'status="OK"' in page
        assert np.isfinite(tf.make_ndarray(
            prediction_service_pb2_grpc.PredictionServiceStub(
                grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")).Predict(
                request, timeout=30).outputs["scores"])).all()
    finally:
        server.stop()
