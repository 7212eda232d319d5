"""Model server replicas behind the service's gRPC client: round robin over the replicas,
a replica that says NOT_SERVING (grpc.health.v1) or dies is left out, with no failed call.

Each replica serves a model named ``m`` whose output is the replica's own number, so an
answer tells which replica gave it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from recsys.errors import ConfigError
from serving.options import ServerOptions
from serving.recommendations.http_server import free_port
from serving.recommendations.model_clients import GrpcModelClient
from serving.recommendations.model_targets import channel_target, check_model_server
from serving.server import ModelServer

ROOT = Path(__file__).resolve().parents[1]


def _constant_model(base: Path, value: float) -> Path:
    import tensorflow as tf

    class Constant(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            return {"replica": tf.zeros_like(x) + value}

    module = Constant()
    tf.saved_model.save(module, str(base / "1"), signatures={"serving_default": module.serve})
    return base


def _replica(tmp_path: Path, number: int) -> ModelServer:
    base = _constant_model(tmp_path / f"replica{number}", float(number))
    return ModelServer(ServerOptions(port=free_port(), model_name="m",
                                     model_base_path=str(base),
                                     file_system_poll_wait_seconds=0)).start()


def _who_answers(client: GrpcModelClient, calls: int) -> Counter:
    answers: Counter = Counter()
    for _ in range(calls):
        answer = client.predict("m", "serving_default", {"x": np.zeros(1, np.float32)},
                                timeout_s=5.0)
        answers[int(answer.outputs["replica"][0])] += 1
    return answers


def _health(port: int) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(
            service="tensorflow.serving.PredictionService"), timeout=5).status


def test_calls_go_round_robin_and_skip_a_replica_that_is_not_serving(tmp_path):
    one, two = _replica(tmp_path, 1), _replica(tmp_path, 2)
    client = GrpcModelClient(f"127.0.0.1:{one.grpc_port},127.0.0.1:{two.grpc_port}")
    try:
        assert _health(one.grpc_port) == health_pb2.HealthCheckResponse.SERVING
        spread = _who_answers(client, 40)
        assert spread[1] >= 15 and spread[2] >= 15, spread

        one.health.stop()  # what stop() does first: NOT_SERVING, the port still open
        assert _health(one.grpc_port) == health_pb2.HealthCheckResponse.NOT_SERVING
        time.sleep(0.5)  # the client's health watch hears it
        assert _who_answers(client, 30) == Counter({2: 30})
    finally:
        client.close()
        one.stop()
        two.stop()


def _start_replica_process(base: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "workflows.cli.main", "model-server", f"--port={port}",
         "--model_name=m", f"--model_base_path={base}", "--file_system_poll_wait_seconds=0"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait_serving(process: subprocess.Popen, port: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if _health(port) == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the replica did not come up"
        time.sleep(0.2)


def test_a_killed_replica_costs_no_call(tmp_path):
    """SIGKILL one of two replica processes between calls: every later call is answered,
    by the other one."""
    ports = [free_port(), free_port()]
    processes = [_start_replica_process(_constant_model(tmp_path / f"r{n}", float(n)), port)
                 for n, port in zip((1, 2), ports)]
    client = None
    try:
        for process, port in zip(processes, ports):
            _wait_serving(process, port)
        client = GrpcModelClient(",".join(f"127.0.0.1:{port}" for port in ports))
        spread = _who_answers(client, 20)
        assert spread[1] and spread[2], spread
        processes[0].send_signal(signal.SIGKILL)
        processes[0].wait(timeout=30)
        assert _who_answers(client, 40) == Counter({2: 40})
    finally:
        if client is not None:
            client.close()
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.communicate()


@pytest.mark.parametrize("value, target", [
    ("127.0.0.1:8500", "127.0.0.1:8500"),
    ("127.0.0.1:8500, 127.0.0.1:8501", "ipv4:127.0.0.1:8500,127.0.0.1:8501"),
    ("localhost:8500,127.0.0.1:8500", "ipv4:127.0.0.1:8500"),
    ("dns:///models.internal:8500", "dns:///models.internal:8500"),
])
def test_model_server_targets(value, target):
    assert check_model_server(value)
    assert channel_target(value) == target


@pytest.mark.parametrize("value, message", [
    ("127.0.0.1", "'127.0.0.1' is not host:port"),
    ("127.0.0.1:8500,:8501", "':8501' is not host:port"),
    ("127.0.0.1:8500,h:99999", "'h:99999' is not host:port"),
    ("no-such-host.invalid:8500,127.0.0.1:1", "cannot resolve 'no-such-host.invalid'"),
])
def test_bad_model_server_targets_are_named(value, message):
    with pytest.raises(ConfigError, match=message):
        channel_target(value)
