"""How the recommendation service calls its models: through the model server's gRPC
PredictionService (TF Serving's API), or in process on the same version manager the model
server uses.

Guarantees: both clients answer ``predict`` with the outputs as NumPy arrays and the version
that computed them; both pick up new versions by themselves (the server polls its base paths;
the in-process client polls them too); a failure of any kind is raised as
:class:`ModelUnavailable` naming the model, so callers and circuit breakers see one error type.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Mapping, Protocol

import numpy as np

log = logging.getLogger(__name__)


class ModelUnavailable(Exception):
    """A model could not answer (not loaded, server down, bad request, timeout)."""

    def __init__(self, model: str, reason: str):
        super().__init__(f"model {model!r} unavailable: {reason}")
        self.model, self.reason = model, reason


@dataclass
class ModelAnswer:
    outputs: dict[str, np.ndarray]
    version: int


class ModelClient(Protocol):
    enforces_timeouts: bool  # predict answers or raises within timeout_s (no caller needs
    # to wait in another thread to hold it to its budget)

    def predict(self, model: str, signature: str, inputs: Mapping[str, np.ndarray],
                timeout_s: float, outputs: tuple[str, ...] = ()) -> ModelAnswer:
        """``outputs``: the output aliases wanted (TF Serving's ``output_filter``; () = all)."""

    def close(self) -> None: ...


class GrpcModelClient:
    """PredictionService/Predict on ``target`` with a per-call deadline: ``host:port``, or
    replicas (``h1:p1,h2:p2``, ``dns:///name:port``) called round robin, health-checked
    (``serving/recommendations/model_targets.py``)."""

    enforces_timeouts = True  # gRPC's deadline: a call answers or fails within timeout_s

    def __init__(self, target: str, label: str | None = None):
        """``label``: every call asks for this version label (TF Serving's
        ``model_spec.version_label``), None: the latest version."""
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        from serving.recommendations.model_targets import channel_options, channel_target

        self.target, self.label = target, label
        # Reconnect quickly once a restarted server is back (the default backoff grows to
        # two minutes); messages as large as TF Serving allows.
        self._channel = grpc.insecure_channel(channel_target(target), options=[
            ("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
            ("grpc.max_receive_message_length", 256 * 1024 * 1024), *channel_options()])
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def predict(self, model: str, signature: str, inputs: Mapping[str, np.ndarray],
                timeout_s: float, outputs: tuple[str, ...] = ()) -> ModelAnswer:
        import grpc
        from tensorflow_serving.apis import predict_pb2

        from serving.tensor_proto import from_ndarray, to_ndarray

        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = signature
        if self.label:
            request.model_spec.version_label = self.label
        request.output_filter.extend(outputs)
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(from_ndarray(value))
        try:
            response = self._stub.Predict(request, timeout=max(timeout_s, 0.001))
        except grpc.RpcError as exc:
            raise ModelUnavailable(model, f"{exc.code().name}: {exc.details()}") from exc
        return ModelAnswer({k: to_ndarray(v) for k, v in response.outputs.items()},
                           int(response.model_spec.version.value))

    def close(self) -> None:
        self._channel.close()


class InProcessModelClient:
    """The model server's version manager inside the service: ``models`` maps names to base
    paths of numbered versions; the latest version of each is served and new ones are loaded
    when they appear (checked every ``poll_seconds``)."""

    def __init__(self, models: Mapping[str, Path], poll_seconds: float = 2.0,
                 batching=None, versions: Mapping[str, int] | None = None,
                 onnx: bool | Collection[str] = True):
        """``batching``: :class:`~serving.batching.BatchingParameters` to batch concurrent
        calls of a signature into one model call (None: every call runs alone);
        ``versions``: serve exactly these versions (a label's), not the latest; ``onnx``:
        run the signatures exported with an ONNX core (the ranker's ``rank``, the retrieval
        query tower) on ONNX Runtime: all (True), none (False) or those of the models
        named."""
        from serving.batching import Batcher
        from serving.server_core import ServerCore

        self.onnx = onnx
        self.core = ServerCore(self._load)
        self.core.reload_config(_config(models, versions or {}))
        self.core.start_polling(poll_seconds)
        self.batcher = Batcher(batching) if batching is not None else None
        # batched calls are waited for at most timeout_s; unbatched ones run in the caller
        self.enforces_timeouts = self.batcher is not None

    def _load(self, name: str, version: int, path: Path):
        import scann  # noqa: F401  (registers the ScaNN ops)

        from serving.servable import Servable

        onnx = self.onnx if isinstance(self.onnx, bool) else name in self.onnx
        return Servable(name, version, path, onnx=onnx)

    def predict(self, model: str, signature: str, inputs: Mapping[str, np.ndarray],
                timeout_s: float, outputs: tuple[str, ...] = ()) -> ModelAnswer:
        from serving.errors import ServingError

        try:
            servable = self.core.manager(model).resolve(None, None)
            spec = servable.signature(signature, api="grpc")
            if self.batcher is None:
                answer, version = servable.run(spec, inputs, outputs), servable.version
            else:
                servable.check(spec, inputs)  # a bad call fails alone, not its whole batch

                def run(arrays: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
                    return servable.run(spec, arrays, outputs, checked=True), servable.version

                answer, version = self.batcher.submit(
                    (model, servable.version, signature, outputs), run, inputs, timeout_s)
        except ServingError as exc:
            raise ModelUnavailable(model, f"{exc.code.name}: {exc}") from exc
        return ModelAnswer(answer, version)

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        self.core.stop()


def _config(models: Mapping[str, Path], versions: Mapping[str, int]):
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    for name, base in models.items():
        entry = config.model_config_list.config.add()
        entry.name, entry.base_path = name, str(Path(base).resolve())
        entry.model_platform = "tensorflow"
        if name in versions:
            entry.model_version_policy.specific.versions.append(versions[name])
    return config


__all__ = ["ModelClient", "ModelAnswer", "ModelUnavailable", "GrpcModelClient",
           "InProcessModelClient"]
