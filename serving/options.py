"""The model server's options, with TF Serving's flag names and defaults, and the model
config they describe (one model from ``--model_name``/``--model_base_path``, or a
``ModelServerConfig`` text proto from ``--model_config_file``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tensorflow_serving.config import model_server_config_pb2

from recsys.errors import ConfigError


@dataclass(frozen=True)
class ServerOptions:
    """Attributes are the flags of ``tensorflow_model_server`` (same names and meanings)."""

    port: int = 8500
    rest_api_port: int = 0
    rest_api_num_threads: int = 16
    rest_api_timeout_in_ms: int = 30_000
    model_name: str = "default"
    model_base_path: str = ""
    model_config_file: str = ""
    model_config_file_poll_wait_seconds: int = 0
    file_system_poll_wait_seconds: int = 1
    monitoring_config_file: str = ""
    allow_version_labels_for_unavailable_models: bool = False
    enable_model_warmup: bool = True
    num_request_iterations_for_warmup: int = 0
    grpc_max_threads: int = 16
    max_batch_size: int = 4096
    enable_batching: bool = False
    batching_parameters_file: str = ""
    host: str = "127.0.0.1"  # TF Serving binds every address; this server only loopback
    tensorflow_intra_op_parallelism: int = 0
    tensorflow_inter_op_parallelism: int = 0

    def __post_init__(self) -> None:
        for name in ("port", "rest_api_port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise ConfigError(f"--{name} must be a port number in [0, 65535], got {value}")
        if self.port == 0:
            raise ConfigError("--port (gRPC) must be set: server_options.grpc_port is not set.")
        if not self.model_base_path and not self.model_config_file:
            raise ConfigError("Both server_options.model_base_path and "
                              "server_options.model_config_file are empty! Pass "
                              "--model_base_path (with --model_name) or --model_config_file.")
        for name in ("rest_api_num_threads", "grpc_max_threads", "max_batch_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name} must be > 0, got {getattr(self, name)}")


def read_model_config(path: Path) -> model_server_config_pb2.ModelServerConfig:
    """A ``ModelServerConfig`` from its text-proto file."""
    from google.protobuf import text_format

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read --model_config_file {path}: {exc.strerror}") from exc
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise ConfigError(f"Invalid protobuf file: '{path}': {exc}") from exc
    return config


def model_config(options: ServerOptions) -> model_server_config_pb2.ModelServerConfig:
    """The config the options describe (the file wins, as in TF Serving)."""
    if options.model_config_file:
        return read_model_config(Path(options.model_config_file))
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = options.model_name
    model.base_path = str(Path(options.model_base_path).resolve())
    model.model_platform = "tensorflow"
    return config


__all__ = ["ServerOptions", "read_model_config", "model_config"]
