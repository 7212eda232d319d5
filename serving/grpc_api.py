"""TF Serving's gRPC services with the generated stubs of tensorflow-serving-api:
``tensorflow.serving.PredictionService`` (Predict, GetModelMetadata; Classify, Regress and
MultiInference answer UNIMPLEMENTED) and ``tensorflow.serving.ModelService``
(GetModelStatus, HandleReloadConfigRequest). Status codes and messages are TF Serving's
(messages longer than 1024 characters are cut and marked ``...TRUNCATED``)."""

from __future__ import annotations

import logging
from concurrent import futures

import grpc
from tensorflow_serving.apis import (model_management_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_service_pb2_grpc)

from serving.errors import Code, ServingError
from serving.prediction import Predictor
from serving.status import check_metadata_fields, metadata_response, status_response
from serving.tensor_proto import from_ndarray, to_ndarray

log = logging.getLogger(__name__)
MAX_MESSAGE = 2 ** 31 - 1


def _abort(context: grpc.ServicerContext, code: Code, message: str):
    if len(message) > 1024:
        message = message[:1024] + "...TRUNCATED"
    context.abort(code.grpc_status, message)


def _spec(request):
    if not request.HasField("model_spec"):
        raise ServingError(Code.INVALID_ARGUMENT, "Missing ModelSpec")
    spec = request.model_spec
    choice = spec.WhichOneof("version_choice")
    version = spec.version.value if choice == "version" else None
    label = spec.version_label if choice == "version_label" else None
    return spec.name, version, label


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, predictor: Predictor):
        self.predictor = predictor

    def Predict(self, request, context):  # noqa: N802 - gRPC method name
        try:
            name, version, label = _spec(request)

            def decode(signature):
                return {k: to_ndarray(v) for k, v in request.inputs.items()}

            prediction = self.predictor.predict(
                name, version, label, request.model_spec.signature_name, decode,
                api="Predict", entrypoint="GRPC", output_filter=tuple(request.output_filter))
        except ServingError as exc:
            return _abort(context, exc.code, exc.message)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = name
        response.model_spec.version.value = prediction.servable.version
        response.model_spec.signature_name = prediction.signature.name
        for alias, value in prediction.outputs.items():
            response.outputs[alias].CopyFrom(from_ndarray(value))
        return response

    def GetModelMetadata(self, request, context):  # noqa: N802
        try:
            name, version, label = _spec(request)
            check_metadata_fields(list(request.metadata_field))
            servable = self.predictor.resolve(name, version, label)
            return metadata_response(name, servable)
        except ServingError as exc:
            return _abort(context, exc.code, exc.message)

    def Classify(self, request, context):  # noqa: N802
        return _abort(context, Code.UNIMPLEMENTED, "Classify is not supported by this model "
                                                   "server; use Predict")

    def Regress(self, request, context):  # noqa: N802
        return _abort(context, Code.UNIMPLEMENTED, "Regress is not supported by this model "
                                                   "server; use Predict")

    def MultiInference(self, request, context):  # noqa: N802
        return _abort(context, Code.UNIMPLEMENTED, "MultiInference is not supported by this "
                                                   "model server; use Predict")


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, predictor: Predictor):
        self.core = predictor.core

    def GetModelStatus(self, request, context):  # noqa: N802
        try:
            name, version, _ = _spec(request)
            return status_response(self.core.manager(name, for_status=True), version)
        except ServingError as exc:
            return _abort(context, exc.code, exc.message)

    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        response = model_management_pb2.ReloadConfigResponse()
        try:
            self.core.reload_config(request.config)
        except ServingError as exc:
            response.status.error_code = int(exc.code)
            response.status.error_message = exc.message
            context.set_code(exc.code.grpc_status)
            context.set_details(exc.message)
        return response


def make_server(predictor: Predictor, port: int, host: str = "127.0.0.1",
                max_threads: int = 16) -> tuple[grpc.Server, int]:
    """A started-later gRPC server with both services; returns it and the bound port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_threads,
                                                    thread_name_prefix="grpc"),
                         options=[("grpc.max_send_message_length", MAX_MESSAGE),
                                  ("grpc.max_receive_message_length", MAX_MESSAGE)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(predictor), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(predictor), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise ServingError(Code.UNAVAILABLE, f"cannot bind the gRPC port {host}:{port}")
    return server, bound


__all__ = ["PredictionService", "ModelService", "make_server"]
