"""`recsys model-server` as a process, with tensorflow_model_server's flags."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from serving_support import export_small_models, free_port

from workflows.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_server_process_serves_rest_and_stops_on_sigterm(trained_model_dir, small_repo,
                                                            tmp_path):
    export_small_models(trained_model_dir, small_repo, tmp_path / "models")
    grpc_port, rest_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "workflows.cli.main", "model-server", f"--port={grpc_port}",
         f"--rest_api_port={rest_port}", "--model_name=retrieval",
         f"--model_base_path={tmp_path / 'models' / 'retrieval'}",
         "--file_system_poll_wait_seconds=0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                response = requests.get(f"http://127.0.0.1:{rest_port}/v1/models/retrieval",
                                        timeout=5)
                if response.status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.2)
        assert response.json()["model_version_status"][0]["state"] == "AVAILABLE"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        assert f"model server ready: gRPC on port {grpc_port}, REST on port {rest_port}" in out
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.parametrize("argv, message", [
    (["model-server", "--port=-1"], "argument --port: expected an integer >= 0, got '-1'"),
    (["model-server", "--rest_api_port=http"],
     "argument --rest_api_port: expected an integer >= 0, got 'http'"),
    (["model-server", "--enable_model_warmup=maybe"],
     "argument --enable_model_warmup: expected true or false, got 'maybe'"),
    (["model-server", "--max_batch_size=0"],
     "argument --max_batch_size: expected a positive integer, got '0'"),
    (["model-server", "--enable_batching=maybe"],
     "argument --enable_batching: expected true or false, got 'maybe'"),
])
def test_bad_flags_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["model-server"], "Both server_options.model_base_path and server_options.model_config_file "
                       "are empty!"),
    (["model-server", "--port=0", "--model_base_path=/x"], "server_options.grpc_port is not set"),
    (["model-server", "--port=70000", "--model_base_path=/x"],
     "--port must be a port number in [0, 65535], got 70000"),
    (["model-server", "--model_base_path=/x", "--enable_batching",
      "--batching_parameters_file=/nonexistent/batching.txt"],
     "cannot read --batching_parameters_file /nonexistent/batching.txt"),
])
def test_bad_options_exit_1(argv, message, capsys):
    assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_unreadable_configs_are_named(tmp_path, capsys):
    bad = tmp_path / "models.config"
    bad.write_text("model_config_list { config { name: 'm' base_path: }")
    port = str(free_port())
    assert main(["model-server", f"--port={port}", f"--model_config_file={bad}"]) == 1
    assert f"Invalid protobuf file: '{bad}'" in capsys.readouterr().err
    assert main(["model-server", f"--port={port}", "--model_base_path=/x",
                 f"--monitoring_config_file={tmp_path / 'absent'}"]) == 1
    assert "absent" in capsys.readouterr().err
    assert main(["model-server", f"--port={port}",
                 f"--model_base_path={tmp_path / 'nothing-here'}"]) == 1
    assert "did not become available" in capsys.readouterr().err
