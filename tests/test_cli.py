import subprocess
import sys
from pathlib import Path

import pytest
from test_movielens import write_movielens

from workflows.cli.main import main


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_generate_then_describe(tmp_path, capsys):
    lake = tmp_path / "lake"
    code, out, _ = _run(capsys, "data", "generate", "--out", str(lake), "--users", "100",
                        "--items", "300", "--days", "2", "--end-date", "2026-11-01",
                        "--no-progress")
    assert code == 0
    assert "users from synthetic(seed=42, users=100, items=300, days=2): received 100, " \
           "written 100" in out
    assert "events: received" in out and "events/s" in out
    code, out, _ = _run(capsys, "data", "describe", str(lake))
    assert code == 0 and "in 2 daily partitions" in out and "impression" in out


def test_import_movielens_twice(tmp_path, capsys):
    src = write_movielens(tmp_path / "ml")
    args = ["data", "import-movielens", "--src", str(src), "--out", str(tmp_path / "lake"),
            "--max-bad-fraction", "1"]
    code, out, _ = _run(capsys, *args)
    assert code == 0 and "written 4," in out and "rejected 5" in out
    code, out, _ = _run(capsys, *args)
    assert code == 0 and "written 0, already in lake 4" in out


def test_errors_are_one_line_with_exit_code_1(tmp_path, capsys):
    code, _, err = _run(capsys, "data", "import-movielens", "--src", str(tmp_path / "nope"),
                        "--out", str(tmp_path / "lake"))
    assert code == 1
    assert err.startswith("recsys: error: --src ") and "is not a directory" in err
    code, _, err = _run(capsys, "data", "describe", str(tmp_path / "missing"))
    assert code == 1 and "is not a recsys lake" in err


def test_bad_ratio_fails_with_the_dead_letter_path(tmp_path, capsys):
    src = write_movielens(tmp_path / "ml")
    code, _, err = _run(capsys, "data", "import-movielens", "--src", str(src),
                        "--out", str(tmp_path / "lake"))
    assert code == 1 and "nothing was written" in err and "_dead_letter" in err


@pytest.mark.parametrize("argv, message", [
    (["data", "generate", "--out", "x", "--users", "0"],
     "argument --users: expected a positive integer, got '0'"),
    (["data", "generate", "--out", "x", "--items", "many"],
     "argument --items: expected a positive integer, got 'many'"),
    (["data", "generate", "--out", "x", "--seed", "-1"],
     "argument --seed: expected an integer >= 0, got '-1'"),
    (["data", "generate", "--out", "x", "--end-date", "31/05/2024"],
     "argument --end-date: expected a date like 2024-05-31, got '31/05/2024'"),
    (["data", "generate", "--users", "5"], "the following arguments are required: --out"),
    (["data", "import-movielens", "--src", "a", "--out", "b", "--max-bad-fraction", "2"],
     "argument --max-bad-fraction: expected a number in [0, 1], got '2'"),
    (["data", "frobnicate"], "invalid choice: 'frobnicate'"),
    (["--log-level", "LOUD", "demo"], "argument --log-level: invalid choice: 'LOUD'"),
    (["demo", "--end-date", "last week"],
     "argument --end-date: expected a date like 2024-05-31, got 'last week'"),
    (["features", "apply", "--profile", "cloud"], "argument --profile: invalid choice: 'cloud'"),
    (["features", "materialize", "--end-date", "tomorrow"],
     "argument --end-date: expected an ISO-8601 time like 2026-11-01T00:00:00, got 'tomorrow'"),
    (["features", "build"], "the following arguments are required: --lake"),
    (["features", "training-set", "--out", "x.parquet", "--split", "dev"],
     "argument --split: invalid choice: 'dev'"),
    (["data", "describe", "x", "--runner", "DirectRunner"],
     "unrecognized arguments: --runner DirectRunner"),
    (["stream-worker", "--processes", "0"],
     "argument --processes: expected a positive integer, got '0'"),
    (["stream-worker", "--batch-size", "lots"],
     "argument --batch-size: expected a positive integer, got 'lots'"),
    (["stream-worker", "--claim-idle-ms", "-5"],
     "argument --claim-idle-ms: expected a positive integer, got '-5'"),
    (["api", "--redis-url"], "argument --redis-url: expected one argument"),
])
def test_bad_flags_exit_2_with_a_message(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_generate_with_future_end_date_is_refused(tmp_path, capsys):
    code, _, err = _run(capsys, "data", "generate", "--out", str(tmp_path / "l"),
                        "--end-date", "2999-01-01")
    assert code == 1 and "end_date 2999-01-01 lies in the future" in err


@pytest.mark.timeout(900)  # the whole system twice: Beam, two models, exports, two servers
def test_demo_runs_and_is_idempotent(tmp_path, capsys):
    args = ["demo", "--workdir", str(tmp_path), "--users", "150", "--items", "400", "--days", "2",
            "--epochs", "1", "--experiment-users", "80", "--experiment-days", "1"]
    code, out, err = _run(capsys, *args)
    assert code == 0 and "new events written (0 already in the lake)" in out, err[-2000:]
    assert "click-through rate" in out
    assert "retrieval_portable" in out and "custom ops: none (stock TF Serving)" in out
    assert '"state": "AVAILABLE"' in out
    assert "REST  POST /v1/models/retrieval:predict -> top 5: " in out
    assert "gRPC  PredictionService/Predict retrieval_portable v1" in out
    assert "POST /v1/recommendations user " in out and "GET /v1/explain user " in out
    assert "a new user who likes " in out and "a new item in " in out
    assert "POST /v1/events: 8 accepted" in out and " recommendations changed" in out
    assert "recommended to user " in out and "(source fresh; new item" in out
    assert "experiment ranker-vs-popular (baseline full" in out and "ctr " in out
    assert "interleaving ranked vs retrieval-order: users preferring" in out
    assert "the simulator's truth (CTR of every request in each arm): full " in out
    from recsys.model_contract.manifest import read_manifest
    from workflows.cli.demo import DEMO_HISTORY_LENGTH

    manifest = read_manifest(tmp_path / "models" / "serving" / "retrieval" / "1")
    assert manifest["model_config"]["history_length"] == DEMO_HISTORY_LENGTH == 10
    assert manifest["model_config"]["user_id_embedding"] is True
    # again, with a model config file: its values and the demo's own where it is silent
    config = tmp_path.parent / f"{tmp_path.name}-retrieval.yaml"
    config.write_text("model:\n  user_id_embedding: false\ntrain:\n  epochs: 5\n")
    code, out, err = _run(capsys, *args, "--retrieval-config", str(config))
    assert code == 0 and " 0 new events written" in out, err[-2000:]
    assert "gRPC  PredictionService/Predict retrieval_portable v1" in out  # models rebuilt
    assert "experiment ranker-vs-popular (baseline full" in out  # a new experiment
    assert "training the two-tower retrieval model (1 epochs)" in out  # --epochs over it
    manifest = read_manifest(tmp_path / "models" / "serving" / "retrieval" / "1")
    assert manifest["model_config"]["user_id_embedding"] is False
    assert manifest["model_config"]["history_length"] == DEMO_HISTORY_LENGTH


@pytest.mark.parametrize("text, message", [
    ("model:\n  user_id_embedding: sometimes\n", "user_id_embedding"),
    ("model:\n  histroy_length: 5\n", "histroy_length"),
    ("optimizer: {}\n", "unknown section(s) optimizer"),
    (None, "not found"),
])
def test_demo_refuses_a_bad_retrieval_config_before_any_work(tmp_path, capsys, text, message):
    config = tmp_path / "retrieval.yaml"
    if text is None:  # no such file
        message = f"config file {config} not found"
    else:
        config.write_text(text)
    code, _, err = _run(capsys, "demo", "--workdir", str(tmp_path / "w"), "--retrieval-config",
                        str(config))
    assert code == 1 and message in err, err
    assert not (tmp_path / "w" / "lake").exists()


def test_installed_console_script(tmp_path):
    exe = Path(sys.executable).with_name("recsys")
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert "data" in out.stdout and "demo" in out.stdout
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=120)
    assert version.stdout.strip() == "recsys 0.1.0"


def test_features_commands_name_a_missing_repo(tmp_path, capsys):
    code, _, err = _run(capsys, "features", "apply", "--repo", str(tmp_path))
    assert code == 1 and "has no feature_store.yaml" in err
    code, _, err = _run(capsys, "features", "build", "--lake", str(tmp_path / "nolake"),
                        "--repo", "feature_repo")
    assert code == 1 and "is not a recsys lake" in err
    code, _, err = _run(capsys, "features", "build", "--lake", str(tmp_path), "--split", "x")
    assert code == 1 and "split must be one of" in err
