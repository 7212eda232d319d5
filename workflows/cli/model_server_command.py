"""`recsys model-server`: a TF Serving-compatible model server, with tensorflow_model_server's
flag names, defaults and meanings (``--port=8500 --rest_api_port=8501 --model_name=m
--model_base_path=/models/m``)."""

from __future__ import annotations

import argparse
import logging
import signal

from workflows.cli.arguments import non_negative_int, positive_int

log = logging.getLogger("recsys")


def tf_bool(text: str) -> bool:
    """TF flag booleans: true/false (also 1/0)."""
    lowered = text.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    server = subparsers.add_parser(
        "model-server", help="serve SavedModels over TF Serving's REST and gRPC APIs",
        description="A model server that speaks TensorFlow Serving's REST and gRPC APIs and "
                    "loads SavedModels that need ScaNN ops. Flags are tensorflow_model_server's.")
    server.add_argument("--port", type=non_negative_int, default=8500,
                        help="gRPC port (default 8500)")
    server.add_argument("--rest_api_port", type=non_negative_int, default=0,
                        help="REST port; 0 (default) disables the REST API")
    server.add_argument("--rest_api_num_threads", type=positive_int, default=16)
    server.add_argument("--rest_api_timeout_in_ms", type=positive_int, default=30_000)
    server.add_argument("--model_name", default="default",
                        help="name of model (ignored if --model_config_file is set)")
    server.add_argument("--model_base_path", default="",
                        help="path to export (ignored if --model_config_file is set, otherwise "
                             "required)")
    server.add_argument("--model_config_file", default="",
                        help="a ModelServerConfig text proto (several models, version "
                             "policies, labels)")
    server.add_argument("--model_config_file_poll_wait_seconds", type=non_negative_int,
                        default=0, help="re-read the config file this often (0: once)")
    server.add_argument("--file_system_poll_wait_seconds", type=int, default=1,
                        help="look for new versions this often (0: once; negative: never)")
    server.add_argument("--monitoring_config_file", default="",
                        help="a MonitoringConfig text proto (Prometheus endpoint)")
    server.add_argument("--allow_version_labels_for_unavailable_models", type=tf_bool,
                        nargs="?", const=True, default=False)
    server.add_argument("--enable_model_warmup", type=tf_bool, nargs="?", const=True,
                        default=True)
    server.add_argument("--num_request_iterations_for_warmup", type=non_negative_int, default=0)
    server.add_argument("--grpc_max_threads", type=positive_int, default=16)
    server.add_argument("--max_batch_size", type=positive_int, default=4096,
                        help="refuse larger predict batches (INVALID_ARGUMENT)")
    server.add_argument("--enable_batching", type=tf_bool, nargs="?", const=True, default=False,
                        help="batch concurrent calls of a signature into one model call")
    server.add_argument("--batching_parameters_file", default="",
                        help="a BatchingParameters text proto (max_batch_size, "
                             "batch_timeout_micros, num_batch_threads, max_enqueued_batches)")
    server.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: like TF Serving, this server "
                             "has no authentication, so it listens on loopback unless told "
                             "otherwise; put it behind the recommendation service, which has)")
    server.add_argument("--tensorflow_intra_op_parallelism", type=non_negative_int, default=0,
                        help="threads per op (0: TensorFlow's default); on small machines 1 "
                             "avoids threads fighting over small requests")
    server.add_argument("--tensorflow_inter_op_parallelism", type=non_negative_int, default=0)
    server.set_defaults(func=run_model_server)


def run_model_server(args: argparse.Namespace) -> int:
    from serving.errors import ServingError
    from serving.options import ServerOptions
    from serving.server import ModelServer

    options = ServerOptions(**{name: getattr(args, name) for name in (
        "port", "rest_api_port", "rest_api_num_threads", "rest_api_timeout_in_ms", "model_name",
        "model_base_path", "model_config_file", "model_config_file_poll_wait_seconds",
        "file_system_poll_wait_seconds", "monitoring_config_file",
        "allow_version_labels_for_unavailable_models", "enable_model_warmup",
        "num_request_iterations_for_warmup", "grpc_max_threads", "max_batch_size",
        "enable_batching", "batching_parameters_file", "host",
        "tensorflow_intra_op_parallelism", "tensorflow_inter_op_parallelism")})
    server = ModelServer(options)
    try:
        server.start()
    except ServingError as exc:
        from recsys.errors import RecsysError

        raise RecsysError(f"Failed to start server. Error: {exc.code.name}: {exc.message}") \
            from exc
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    print(f"model server ready: gRPC on port {server.grpc_port}"
          + (f", REST on port {server.rest_port}" if server.rest_port else ""), flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
