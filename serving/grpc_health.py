"""The standard gRPC health service (``grpc.health.v1.Health``) on the model server, so that
clients with gRPC's client-side health checking (and load balancers, Kubernetes' gRPC probes)
send requests only to replicas that can answer them.

TF Serving itself has no health service; this one adds nothing to TF Serving's APIs and
changes none of them. The overall status (service name ``""``) and that of
``tensorflow.serving.PredictionService`` are:

* ``SERVING`` while every configured model has at least one loaded version;
* ``NOT_SERVING`` while a model has none (loading, or every version failed) and from the
  moment the server starts to stop, so clients move away before its port closes.

The status is refreshed every ``interval_s`` and on demand (:meth:`ModelHealth.refresh`).
"""

from __future__ import annotations

import threading
from typing import Callable, Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
SERVICES = ("", PREDICTION_SERVICE)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class ModelHealth:
    """Keeps the health service's statuses in step with ``ready()`` (True: every model has a
    loaded version)."""

    def __init__(self, ready: Callable[[], bool], interval_s: float = 1.0,
                 services: Sequence[str] = SERVICES):
        self.servicer = health.HealthServicer()
        self._ready, self._interval_s, self._services = ready, interval_s, tuple(services)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.refresh()

    def add_to(self, server: grpc.Server) -> None:
        health_pb2_grpc.add_HealthServicer_to_server(self.servicer, server)

    def refresh(self) -> int:
        """Set and return the status from ``ready()`` (NOT_SERVING once stopping)."""
        status = SERVING if not self._stopping.is_set() and self._ready() else NOT_SERVING
        for service in self._services:
            self.servicer.set(service, status)
        return status

    def start(self) -> None:
        def loop() -> None:
            while not self._stopping.wait(self._interval_s):
                self.refresh()
        self._thread = threading.Thread(target=loop, name="grpc-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """NOT_SERVING from now on, for good (the server is going away)."""
        self._stopping.set()
        self.refresh()
        if self._thread is not None:
            self._thread.join(timeout=5)


__all__ = ["ModelHealth", "NOT_SERVING", "PREDICTION_SERVICE", "SERVING", "SERVICES"]
