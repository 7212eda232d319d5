"""The demo's serving step: the model server on the exported models, queried the way TF
Serving clients query it (plain HTTP JSON, and the tensorflow-serving-api gRPC stubs)."""

from __future__ import annotations

import json
from pathlib import Path

from serving.recommendations.http_server import free_port


def _latest_query(repo: Path, user: str, cfg) -> dict:
    """The user's latest training example as the retrieval signature's inputs."""
    import pyarrow.parquet as pq

    from recsys.model_contract.arrays import to_arrays, with_missing_columns
    from recsys.model_contract.feature_spec import query_inputs

    examples = pq.read_table(repo / "data" / "training_examples").to_pandas()
    latest = examples[examples["user_id"] == user].sort_values("event_timestamp").tail(1)
    return to_arrays(with_missing_columns(latest.copy(), query_inputs(cfg)), query_inputs(cfg))


def serve_and_query(base: Path, repo: Path, user: str) -> None:
    import grpc
    import requests
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from recsys.model_contract.manifest import read_manifest
    from recsys.model_contract.versioning import versions
    from serving.options import ServerOptions
    from serving.server import ModelServer
    from trainer.config import RetrievalConfig

    config = base / "models.config"
    config.write_text("model_config_list {\n" + "".join(
        f'  config {{ name: "{name}" base_path: "{(base / name).resolve()}" '
        f'model_platform: "tensorflow" }}\n'
        for name in ("retrieval", "retrieval_portable", "item_tower")) + "}\n")
    server = ModelServer(ServerOptions(port=free_port(), rest_api_port=free_port(),
                                       host="127.0.0.1", model_config_file=str(config))).start()
    try:
        rest = f"http://127.0.0.1:{server.rest_port}"
        status = requests.get(f"{rest}/v1/models/retrieval", timeout=30).json()
        print(f"      model server: gRPC :{server.grpc_port}, REST :{server.rest_port}; "
              f"GET /v1/models/retrieval -> {json.dumps(status['model_version_status'])}")
        version = versions(base / "retrieval")[-1]
        cfg = RetrievalConfig.from_dict(
            {"model": read_manifest(base / "retrieval" / str(version))["model_config"]}).model
        query = _latest_query(repo, user, cfg)
        columns = {k: v.tolist() for k, v in query.items()}
        body = json.dumps({"signature_name": "retrieval", "inputs": columns})
        answer = requests.post(f"{rest}/v1/models/retrieval:predict",
                               data=body, timeout=30).json()["outputs"]
        print(f"      user {user}: recent items {columns['history_item_ids'][0][:5]}")
        print("      REST  POST /v1/models/retrieval:predict -> top 5: " + ", ".join(
            f"{i} ({s:.2f})" for i, s in zip(answer["item_ids"][0][:5],
                                               answer["scores"][0][:5])))
        stub = prediction_service_pb2_grpc.PredictionServiceStub(
            grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "retrieval_portable"
        request.model_spec.signature_name = "retrieval"
        for name, value in query.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        response = stub.Predict(request, timeout=30)
        ids = [x.decode() for x in tf.make_ndarray(response.outputs["item_ids"])[0, :5]]
        print(f"      gRPC  PredictionService/Predict retrieval_portable "
              f"v{response.model_spec.version.value} (exact search) -> top 5: {', '.join(ids)}")
    finally:
        server.stop()
