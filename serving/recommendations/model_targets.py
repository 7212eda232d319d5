"""Where the service finds the model server: one address or several replicas.

``model_server`` is ``host:port``, a comma-separated list of them (replicas), or a gRPC target
with a scheme (``dns:///models.internal:8500``: one name with several addresses, which gRPC
re-resolves). The channel spreads calls over the replicas round robin, and gRPC's client-side
health checking (``grpc.health.v1.Health``, which the model server implements) takes a replica
out of the rotation while it is not serving: loading, stopping, or gone. A server without the
health service (TF Serving itself) answers UNIMPLEMENTED, which gRPC takes as healthy. A call
that fails with UNAVAILABLE before any replica has it (a connection just lost) is retried on
another, within the call's deadline.
"""

from __future__ import annotations

import json
import socket

from recsys.errors import ConfigError

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
SERVICE_CONFIG = {
    "loadBalancingConfig": [{"round_robin": {}}],
    "healthCheckConfig": {"serviceName": PREDICTION_SERVICE},
    "methodConfig": [{
        "name": [{"service": PREDICTION_SERVICE}],
        "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.005s", "maxBackoff": "0.05s",
                        "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
    }],
}


def _host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"model_server: {address.strip()!r} is not host:port")
    return host, int(port)


def _ipv4(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"model_server: cannot resolve {host!r} to an IPv4 address: "
                          f"{exc.strerror}") from exc
    return sorted({f"{info[4][0]}:{port}" for info in infos})


def channel_target(model_server: str) -> str:
    """The gRPC target for ``model_server`` (see the module docstring); a list of hosts is
    resolved once, here. Raises ConfigError naming a bad address."""
    text = model_server.strip()
    if not text:
        raise ConfigError("model_server is empty")
    if "://" in text or text.startswith(("dns:", "ipv4:", "ipv6:", "unix:")):
        return text
    addresses = [part for part in text.split(",") if part.strip()]
    if len(addresses) == 1:
        _host_port(addresses[0])
        return addresses[0].strip()
    resolved: list[str] = []
    for address in addresses:
        resolved += [a for a in _ipv4(*_host_port(address)) if a not in resolved]
    return "ipv4:" + ",".join(resolved)


def check_model_server(value: str) -> bool:
    """For the config check: empty (models in process) or a valid ``model_server``."""
    if not value:
        return True
    if "://" in value or value.startswith(("dns:", "ipv4:", "ipv6:", "unix:")):
        return True
    try:
        for part in value.split(","):
            _host_port(part)
    except ConfigError:
        return False
    return True


def channel_options() -> list[tuple[str, object]]:
    """Round robin, health checking and retries of UNAVAILABLE (see the module docstring)."""
    return [("grpc.service_config", json.dumps(SERVICE_CONFIG)), ("grpc.enable_retries", 1)]


__all__ = ["SERVICE_CONFIG", "channel_options", "channel_target", "check_model_server"]
