"""The model server: ServerCore + REST (uvicorn) + gRPC, started and stopped together.

``ModelServer(options).start()`` loads the initial config (failing, as TF Serving does, when a
model has no version that becomes available), warms each version up from
``assets.extra/tf_serving_warmup_requests`` before it is served, starts the gRPC server and,
when ``rest_api_port`` is set, the REST server, then the polling threads.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import recsys  # noqa: F401  (Keras 2 before TensorFlow)
from serving.errors import Code, ServingError
from serving.grpc_api import make_server
from serving.grpc_health import ModelHealth
from serving.options import ServerOptions, model_config, read_model_config
from serving.prediction import Predictor
from serving.rest_api import RestApi
from serving.servable import Servable
from serving.server_core import ServerCore
from serving.tf_threads import pin_tensorflow_threads

log = logging.getLogger(__name__)


def _batcher(options: ServerOptions):
    """The batcher of ``--enable_batching`` (parameters from ``--batching_parameters_file``,
    else the defaults), or None."""
    if not options.enable_batching:
        if options.batching_parameters_file:
            log.warning("--batching_parameters_file is ignored without --enable_batching")
        return None
    from serving.batching import Batcher, BatchingParameters, read_batching_parameters

    params = (read_batching_parameters(Path(options.batching_parameters_file))
              if options.batching_parameters_file else BatchingParameters())
    log.info("batching: %s", params)
    return Batcher(params)


class ModelServer:
    def __init__(self, options: ServerOptions):
        self.options = options
        self.metrics = None
        self.metrics_path = None
        if options.monitoring_config_file:
            from serving.monitoring import load_monitoring_config

            settings = load_monitoring_config(Path(options.monitoring_config_file))
            if settings.enable:
                self.metrics_path = settings.path
        from serving.monitoring import ServingMetrics

        self.metrics = ServingMetrics()
        self.core = ServerCore(self._load, options.allow_version_labels_for_unavailable_models)
        self.predictor = Predictor(self.core, options.max_batch_size, self.metrics,
                                   batcher=_batcher(options),
                                   batch_timeout_s=options.rest_api_timeout_in_ms / 1000)
        self.grpc_port = 0
        self.rest_port = 0
        self._grpc = None
        self.health: ModelHealth | None = None
        self._uvicorn = None
        self._rest_thread = None

    # -- loading -------------------------------------------------------------------------
    def _load(self, name: str, version: int, path: Path) -> Servable:
        import scann  # noqa: F401  (registers the Scann ops: ScaNN models load)

        servable = Servable(name, version, path)
        if self.options.enable_model_warmup:
            self._warm_up(servable)
        return servable

    def _warm_up(self, servable: Servable) -> None:
        import tensorflow as tf

        from serving.warmup import read_warmup_requests

        requests = read_warmup_requests(servable.path)
        if not requests:
            return
        iterations = self.options.num_request_iterations_for_warmup or 1
        started = time.perf_counter()
        status = "OK"
        try:
            for _ in range(iterations):
                for request in requests:
                    signature = servable.signature(request.model_spec.signature_name, api="grpc")
                    inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
                    servable.run(signature, inputs)
        except ServingError as exc:
            status = exc.code.name
            raise
        finally:
            self.metrics.record_warmup(str(servable.path), status,
                                       time.perf_counter() - started)
        log.info("warmed up %s version %d with %d request(s) x %d", servable.name,
                 servable.version, len(requests), iterations)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> ModelServer:
        """Start everything; if any part fails, what was started is stopped again."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> ModelServer:
        options = self.options
        pin_tensorflow_threads(options.tensorflow_intra_op_parallelism,
                               options.tensorflow_inter_op_parallelism)
        self.core.reload_config(model_config(options))
        self._grpc, self.grpc_port = make_server(self.predictor, options.port, options.host,
                                                 options.grpc_max_threads)
        self.health = ModelHealth(self._models_ready)
        self.health.add_to(self._grpc)
        self._grpc.start()
        self.health.start()
        log.info("Running gRPC ModelServer at %s:%d ...", options.host, self.grpc_port)
        if options.rest_api_port:
            if options.rest_api_port == options.port:
                log.warning("server_options.http_port cannot be same as grpc_port. Please use a "
                            "different port for HTTP/REST API. Skipped exporting HTTP/REST API.")
            else:
                self._start_rest()
        config_file = Path(options.model_config_file) if options.model_config_file else None
        self.core.start_polling(options.file_system_poll_wait_seconds, config_file,
                                options.model_config_file_poll_wait_seconds, read_model_config)
        return self

    def _start_rest(self) -> None:
        import uvicorn

        api = RestApi(self.predictor, self.options.rest_api_timeout_in_ms / 1000.0,
                      self.metrics_path, self.metrics.render if self.metrics_path else None,
                      self.options.rest_api_num_threads)
        config = uvicorn.Config(api.app(), host=self.options.host,
                                port=self.options.rest_api_port, log_level="warning",
                                access_log=False, lifespan="off", log_config=None)
        self._uvicorn = uvicorn.Server(config)
        self._rest_thread = threading.Thread(target=self._uvicorn.run, name="rest-api",
                                             daemon=True)
        self._rest_thread.start()
        deadline = time.monotonic() + 120
        while not self._uvicorn.started:
            if not self._rest_thread.is_alive() or time.monotonic() > deadline:
                raise ServingError(Code.UNAVAILABLE, f"the REST API could not start on "
                                                     f"{self.options.host}:"
                                                     f"{self.options.rest_api_port}")
            time.sleep(0.02)
        self.rest_port = self.options.rest_api_port
        log.info("Exporting HTTP/REST API at:%s:%d ...", self.options.host, self.rest_port)

    def _models_ready(self) -> bool:
        managers = self.core.managers()
        return bool(managers) and all(m.loaded_versions() for m in managers)

    def stop(self) -> None:
        if self.health is not None:
            self.health.stop()  # clients route elsewhere before the port closes
        self.core.stop()
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
            self._rest_thread.join(timeout=10)
        if self._grpc is not None:
            self._grpc.stop(grace=2).wait()
        if self.predictor.batcher is not None:
            self.predictor.batcher.close()

    def wait(self) -> None:
        """Block until interrupted (Ctrl-C / SIGTERM)."""
        if self._grpc is not None:
            self._grpc.wait_for_termination()


__all__ = ["ModelServer"]
