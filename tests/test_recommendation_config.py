"""The service's configuration and the `recsys api` / `recsys popular build` command lines:
defaults, overrides, and every bad value named."""

from __future__ import annotations

import json

import pytest

from recsys.errors import ConfigError
from serving.recommendations.config import ServiceConfig, load_service_config
from serving.recommendations.rules import RulesConfig
from workflows.cli.main import main


def test_file_then_flags(tmp_path):
    path = tmp_path / "service.yaml"
    path.write_text("request_deadline_ms: 120\nmax_k: 40\nrules:\n  max_per_category: 0.5\n")
    cfg = load_service_config(path, {"max_k": 30, "model_server": None, "repo": "r"})
    assert cfg.request_deadline_ms == 120 and cfg.max_k == 30
    assert cfg.rules == RulesConfig(max_per_category=0.5)
    assert str(cfg.repo) == "r" and cfg.popular_lists_path == cfg.model_base_path / "popular.json"


@pytest.mark.parametrize("values, message", [
    ({"request_deadline_ms": 0}, "request_deadline_ms must be a number > 0, got 0"),
    ({"ranking_timeout_ms": "fast"}, "ranking_timeout_ms must be a number > 0, got 'fast'"),
    ({"max_k": 0}, "max_k must be a positive integer, got 0"),
    ({"workers": 2.5}, "workers must be a positive integer, got 2.5"),
    ({"workers": 0}, "workers must be a positive integer, got 0"),
    ({"dependency_threads": 0}, "dependency_threads must be a positive integer, got 0"),
    ({"tensorflow_intra_op_parallelism": -1},
     "tensorflow_intra_op_parallelism must be an integer >= 0, got -1"),
    ({"tensorflow_inter_op_parallelism": "one"},
     "tensorflow_inter_op_parallelism must be an integer >= 0, got 'one'"),
    ({"default_k": 20, "max_k": 10}, r"default_k \(20\) must be <= max_k \(10\)"),
    ({"model_server": "localhost"}, "model_server must be host:port, a comma-separated list of "
                                       r"them \(replicas\) or a gRPC target such as "
                                       "dns:///name:port, got 'localhost'"),
    ({"model_server": "h:1,h"}, "model_server must be host:port, a comma-separated list of "),
    ({"item_table_refresh_s": 0}, "item_table_refresh_s must be a number > 0, got 0"),
    ({"enable_batching": "yes"}, "enable_batching must be"),
    ({"ranker_runtime": "xla"},
     r"ranker_runtime must be one of \['onnxruntime', 'tensorflow'\], got 'xla'"),
    ({"profile_sample_rate": 2}, r"profile_sample_rate must be a number in \[0, 1\], got 2"),
    ({"model_label": 3}, "model_label must be a string, got 3"),
    ({"retrieval_runtime": "tf"},
     r"retrieval_runtime must be one of \['onnxruntime', 'tensorflow'\], got 'tf'"),
])
def test_bad_values_are_named(values, message):
    with pytest.raises(ConfigError, match=message):
        ServiceConfig(**values)


def test_bad_files_are_named(tmp_path):
    path = tmp_path / "service.yaml"
    path.write_text("deadline: 10\n")
    with pytest.raises(ConfigError, match="unknown key.*'service': deadline"):
        load_service_config(path)
    path.write_text("rules:\n  recency: 1\n")
    with pytest.raises(ConfigError, match="unknown key.*'rules': recency"):
        load_service_config(path)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must hold a mapping of service settings, got list"):
        load_service_config(path)
    with pytest.raises(ConfigError, match="config file .*absent.yaml not found"):
        load_service_config(tmp_path / "absent.yaml")
    path.write_text("repo: 3\n")
    with pytest.raises(ConfigError, match="repo must be a path, got 3"):
        load_service_config(path)


@pytest.mark.parametrize("argv, message", [
    (["api", "--deadline-ms", "0"], "argument --deadline-ms: expected a number > 0, got '0'"),
    (["api", "--port", "-1"], "argument --port"),
    (["api", "--workers", "0"], "argument --workers: expected a positive integer, got '0'"),
    (["api", "--workers", "two"], "argument --workers: expected a positive integer, got 'two'"),
    (["api", "--dependency-threads", "0"],
     "argument --dependency-threads: expected a positive integer, got '0'"),
    (["popular", "build"], "the following arguments are required: --out"),
    (["popular", "build", "--out", "x.json", "--window-days", "none"],
     "argument --window-days: expected a number > 0, got 'none'"),
])
def test_bad_flags_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_popular_build_and_api_start_errors(small_repo, tmp_path, capsys):
    out = tmp_path / "popular.json"
    assert main(["popular", "build", "--repo", str(small_repo), "--out", str(out),
                 "--min-segment-events", "5"]) == 0
    assert "global items" in capsys.readouterr().out
    assert json.loads(out.read_text())["format"] == "recsys.popular/v1"
    assert main(["popular", "build", "--repo", str(tmp_path), "--out", str(out)]) == 1
    assert "training_examples not found; run `recsys features build` first" in \
        capsys.readouterr().err
    assert main(["api", "--repo", str(small_repo), "--model-base-path", str(tmp_path)]) == 1
    assert f"no exported 'retrieval' model under {tmp_path}" in capsys.readouterr().err
