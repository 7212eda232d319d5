"""Conformance of the model server with TF Serving, using only what a TF Serving client uses:
plain HTTP in TF Serving's documented JSON formats, and tensorflow-serving-api's gRPC stubs."""

from __future__ import annotations

import base64
import json

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from serving_support import config_text, export_small_models, start_server
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from recsys.model_contract.arrays import to_arrays
from recsys.model_contract.feature_spec import query_inputs
from trainer.model_dir import ModelDir

MAX_BATCH = 64


@pytest.fixture(scope="module")
def served(trained_model_dir, small_repo, small_data, tmp_path_factory):
    base = tmp_path_factory.mktemp("served")
    export_small_models(trained_model_dir, small_repo, base)
    config = base / "models.config"
    config.write_text(config_text(
        {name: base / name for name in ("retrieval", "retrieval_portable", "item_tower")},
        labels={"retrieval_portable": {"stable": 1}}))
    monitoring = base / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true, path: "/monitoring/prometheus/'
                          'metrics" }\n')
    server = start_server(model_config_file=str(config), monitoring_config_file=str(monitoring),
                          max_batch_size=MAX_BATCH)
    cfg, _, _ = ModelDir(trained_model_dir).restore()
    queries = to_arrays(small_data.test.head(4), query_inputs(cfg.model))
    yield server, base, queries
    server.stop()


def _url(server, path):
    return f"http://127.0.0.1:{server.rest_port}{path}"


def _instances(queries):
    rows = []
    for i in range(len(queries["user_id"])):
        row = {}
        for name, values in queries.items():
            value = values[i]
            row[name] = value.tolist() if isinstance(value, np.ndarray) else (
                value.item() if hasattr(value, "item") else value)
            if isinstance(row[name], float) and np.isnan(row[name]):
                row[name] = "NaN"
        rows.append(row)
    return rows


def _json_body(payload) -> str:
    return json.dumps(payload).replace('"NaN"', "NaN")


def _local(base, name, signature, queries):
    model = tf.saved_model.load(str(base / name / "1"))
    return {k: v.numpy() for k, v in model.signatures[signature](
        **{k: tf.constant(v) for k, v in queries.items()}).items()}


def test_status_metadata_and_labels_over_rest(served):
    server, _, _ = served
    response = requests.get(_url(server, "/v1/models/retrieval"), timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE",
         "status": {"error_code": "OK", "error_message": ""}}]}
    assert requests.get(_url(server, "/v1/models/retrieval/versions/1"),
                        timeout=30).json()["model_version_status"][0]["state"] == "AVAILABLE"
    metadata = requests.get(_url(server, "/v1/models/retrieval_portable/labels/stable/metadata"),
                            timeout=30).json()
    assert metadata["model_spec"]["name"] == "retrieval_portable"
    assert metadata["model_spec"]["version"] == "1"
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    assert {"retrieval", "serving_default", "query_embedding"} <= set(signatures)
    assert signatures["retrieval"]["inputs"]["user_id"]["dtype"] == "DT_STRING"
    assert signatures["retrieval"]["outputs"]["scores"]["dtype"] == "DT_FLOAT"


def test_predict_row_and_columnar_formats_match_the_savedmodel(served):
    server, base, queries = served
    expected = _local(base, "retrieval_portable", "retrieval", queries)
    row = requests.post(_url(server, "/v1/models/retrieval_portable:predict"),
                        data=_json_body({"signature_name": "retrieval",
                                         "instances": _instances(queries)}), timeout=30)
    assert row.status_code == 200, row.text
    predictions = row.json()["predictions"]
    assert len(predictions) == 4
    assert [p["item_ids"] for p in predictions] == expected["item_ids"].astype(str).tolist()
    np.testing.assert_allclose([p["scores"] for p in predictions], expected["scores"],
                               rtol=1e-5)
    columnar = {name: [r[name] for r in _instances(queries)] for name in queries}
    response = requests.post(_url(server, "/v1/models/retrieval_portable/versions/1:predict"),
                             data=_json_body({"inputs": columnar}), timeout=30)
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    assert outputs["item_ids"] == expected["item_ids"].astype(str).tolist()


def test_scann_model_and_other_signatures_over_rest(served):
    server, base, queries = served
    exact = _local(base, "retrieval_portable", "retrieval", queries)["item_ids"].astype(str)
    response = requests.post(_url(server, "/v1/models/retrieval:predict"),
                             data=_json_body({"instances": _instances(queries)}), timeout=30)
    assert response.status_code == 200, response.text
    found = [p["item_ids"] for p in response.json()["predictions"]]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact.tolist())])
    assert overlap >= 0.95  # exact ScaNN; ties may swap places at the 10th position
    embedding = requests.post(_url(server, "/v1/models/retrieval:predict"),
                              data=_json_body({"signature_name": "query_embedding",
                                               "instances": _instances(queries)}), timeout=30)
    assert embedding.status_code == 200
    vectors = np.asarray(embedding.json()["predictions"])
    assert vectors.shape == (4, 16)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_b64_strings_are_accepted(served):
    server, base, queries = served
    instances = _instances(queries)[:1]
    instances[0]["user_id"] = {"b64": base64.b64encode(
        instances[0]["user_id"].encode()).decode()}
    response = requests.post(_url(server, "/v1/models/retrieval_portable:predict"),
                             data=_json_body({"instances": instances}), timeout=30)
    assert response.status_code == 200, response.text


def _stubs(server):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    return (prediction_service_pb2_grpc.PredictionServiceStub(channel),
            model_service_pb2_grpc.ModelServiceStub(channel))


def _predict_request(model, queries, signature="retrieval", version=None, label=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for name, value in queries.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def test_grpc_predict_metadata_status_and_reload(served):
    server, base, queries = served
    prediction, models = _stubs(server)
    response = prediction.Predict(_predict_request("retrieval_portable", queries), timeout=30)
    assert response.model_spec.name == "retrieval_portable"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "retrieval"
    ids = tf.make_ndarray(response.outputs["item_ids"]).astype(str)
    expected = _local(base, "retrieval_portable", "retrieval", queries)["item_ids"].astype(str)
    assert (ids == expected).all()
    labelled = prediction.Predict(_predict_request("retrieval_portable", queries,
                                                   label="stable"), timeout=30)
    assert labelled.model_spec.version.value == 1

    scann = prediction.Predict(_predict_request("retrieval", queries), timeout=30)
    assert tf.make_ndarray(scann.outputs["scores"]).shape == (4, 10)

    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "item_tower"
    metadata = prediction.GetModelMetadata(request, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    metadata.metadata["signature_def"].Unpack(signatures)
    assert {"item_tower", "serving_default"} <= set(signatures.signature_def)

    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "retrieval"
    status = models.GetModelStatus(status_request, timeout=30)
    assert [(s.version, s.state) for s in status.model_version_status] == [
        (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]

    reload = model_management_pb2.ReloadConfigRequest()
    from google.protobuf import text_format

    text_format.Parse(config_text({name: base / name for name in
                                   ("retrieval", "retrieval_portable", "item_tower")},
                                  labels={"retrieval_portable": {"stable": 1, "canary": 1}}),
                      reload.config)
    answer = models.HandleReloadConfigRequest(reload, timeout=120)
    assert answer.status.error_code == 0
    canary = prediction.Predict(_predict_request("retrieval_portable", queries,
                                                 label="canary"), timeout=30)
    assert canary.model_spec.version.value == 1


@pytest.mark.parametrize("model, signature, version, label, code, message", [
    ("nope", "retrieval", None, None, grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Latest(nope)"),
    ("retrieval", "retrieval", 7, None, grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Specific(retrieval, 7)"),
    ("retrieval_portable", "retrieval", None, "nope", grpc.StatusCode.INVALID_ARGUMENT,
     "Unrecognized servable version label: nope"),
    ("retrieval", "nope", None, None, grpc.StatusCode.FAILED_PRECONDITION,
     'Serving signature key "nope" not found.'),
])
def test_grpc_errors_carry_tf_serving_codes(served, model, signature, version, label, code,
                                            message):
    server, _, queries = served
    prediction, _ = _stubs(server)
    with pytest.raises(grpc.RpcError) as exc:
        prediction.Predict(_predict_request(model, queries, signature, version, label),
                           timeout=30)
    assert exc.value.code() == code
    assert exc.value.details() == message


def test_grpc_missing_input_and_wrong_dtype(served):
    server, _, queries = served
    prediction, _ = _stubs(server)
    partial = {k: v for k, v in queries.items() if k != "user_id"}
    with pytest.raises(grpc.RpcError) as exc:
        prediction.Predict(_predict_request("retrieval", partial), timeout=30)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Missing but required: {user_id}" in exc.value.details()
    wrong = {**queries, "hour_of_day": queries["hour_of_day"].astype(np.float32)}
    with pytest.raises(grpc.RpcError) as exc:
        prediction.Predict(_predict_request("retrieval", wrong), timeout=30)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "hour_of_day" in exc.value.details()


def test_malformed_rest_requests_get_tf_serving_statuses_and_the_server_keeps_serving(served):
    server, _, queries = served
    one = _instances(queries)[:1]
    wrong_type = [{**one[0], "hour_of_day": "noon"}]
    wrong_shape = [{**one[0], "user_id": [["a"]]}]
    missing = [{k: v for k, v in one[0].items() if k != "user_id"}]
    big = {name: [one[0][name]] * (MAX_BATCH + 1) for name in one[0]}
    cases = [
        ("POST", "/v1/models/retrieval:predict", "", 400, "JSON Parse error: The document is "
                                                         "empty"),
        ("POST", "/v1/models/retrieval:predict", "{", 400, "JSON Parse error"),
        ("POST", "/v1/models/retrieval:predict", "[]", 400, "Is not object"),
        ("POST", "/v1/models/retrieval:predict", "{}", 400,
         "Missing 'inputs' or 'instances' key"),
        ("POST", "/v1/models/retrieval:predict", _json_body({"instances": wrong_type}), 400,
         "hour_of_day"),
        ("POST", "/v1/models/retrieval:predict", _json_body({"instances": wrong_shape}), 400,
         "user_id"),
        ("POST", "/v1/models/retrieval:predict", _json_body({"instances": missing}), 400,
         "user_id"),
        ("POST", "/v1/models/retrieval:predict", _json_body({"inputs": big}), 400,
         f"larger than maximum input batch size {MAX_BATCH}"),
        ("POST", "/v1/models/nope:predict", _json_body({"instances": one}), 404,
         "Servable not found for request: Latest(nope)"),
        ("POST", "/v1/models/retrieval/versions/9:predict", _json_body({"instances": one}), 404,
         "Servable not found for request: Specific(retrieval, 9)"),
        ("POST", "/v1/models/retrieval_portable/labels/nope:predict",
         _json_body({"instances": one}), 400, "Unrecognized servable version label: nope"),
        ("POST", "/v1/models/retrieval:predict",
         _json_body({"signature_name": "nope", "instances": one}), 400,
         'Serving signature name: "nope" not found in signature def'),
        ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
        ("GET", "/v1/models/retrieval/versions/5", None, 404,
         "Could not find version 5 of model retrieval"),
        ("GET", "/v1/models/retrieval:predict", None, 400,
         "Malformed request: GET /v1/models/retrieval:predict"),
        ("DELETE", "/v1/models/retrieval", None, 400,
         "Malformed request: DELETE /v1/models/retrieval"),
        ("GET", "/v1/models", None, 400, "Missing model name in request."),
    ]
    for method, path, body, status, message in cases:
        response = requests.request(method, _url(server, path), data=body, timeout=30)
        assert response.status_code == status, (path, body and body[:80], response.text)
        error = response.json()["error"]
        assert message in error, (path, error)
    outside = requests.get(_url(server, "/v2/anything"), timeout=30)
    assert outside.status_code == 404 and "Not Found" in outside.text
    ok = requests.post(_url(server, "/v1/models/retrieval:predict"),
                       data=_json_body({"instances": one}), timeout=30)
    assert ok.status_code == 200


def test_prometheus_metrics_count_requests_by_model_and_status(served):
    server, _, queries = served
    requests.post(_url(server, "/v1/models/retrieval_portable:predict"),
                  data=_json_body({"instances": _instances(queries)}), timeout=30)
    requests.post(_url(server, "/v1/models/retrieval_portable:predict"), data="{", timeout=30)
    page = requests.get(_url(server, "/monitoring/prometheus/metrics"), timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
    text = page.text
    assert "# TYPE :tensorflow:serving:request_count counter" in text
    assert ':tensorflow:serving:request_count{model_name="retrieval_portable",status="OK"}' in text
    assert ":tensorflow:serving:request_latency_bucket" in text
    from prometheus_client.parser import text_string_to_metric_families

    assert list(text_string_to_metric_families(text))


def test_grpc_with_batching_gives_each_client_its_own_answer(served, tmp_path):
    """--enable_batching with a --batching_parameters_file: concurrent single-row Predict
    calls share model calls, and each gets exactly what an unbatched call gives; a bad
    request fails alone."""
    from concurrent.futures import ThreadPoolExecutor

    _, base, queries = served
    params = tmp_path / "batching.txt"
    params.write_text("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 2000 }\n"
                      "num_batch_threads { value: 1 }\nmax_enqueued_batches { value: 100 }\n")
    server = start_server(model_base_path=str(base / "retrieval"), model_name="retrieval",
                          enable_batching=True, batching_parameters_file=str(params))
    try:
        prediction, _ = _stubs(server)
        rows = [{k: v[i:i + 1] for k, v in queries.items()} for i in range(4)] * 8
        expected = _local(base, "retrieval", "retrieval", queries)

        def call(i):
            response = prediction.Predict(_predict_request("retrieval", rows[i]), timeout=30)
            return tf.make_ndarray(response.outputs["item_ids"]).astype(str)

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(call, range(len(rows))))
        for i, ids in enumerate(answers):
            assert (ids == expected["item_ids"].astype(str)[i % 4:i % 4 + 1]).all()
        (batches, tasks), = server.predictor.batcher.stats().values()
        assert tasks == len(rows) and batches < len(rows)
        wrong = {**rows[0], "hour_of_day": rows[0]["hour_of_day"].astype(np.float32)}
        with pytest.raises(grpc.RpcError) as exc:
            prediction.Predict(_predict_request("retrieval", wrong), timeout=30)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        server.stop()
