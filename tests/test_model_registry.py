"""The model registry: aliases as the model server's version labels, the promotion log, `recsys
models list | promote | rollback | log`, and a real model server following promotions and a
rollback under load without a failed request."""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
import time

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from recsys.errors import ConfigError
from recsys.model_contract.registry import Registry
from workflows.cli.main import main


def _version(base, model, version, evaluation=None):
    """A version directory with a manifest (what the registry reads of an export)."""
    path = base / model / str(version) / "assets.extra"
    path.mkdir(parents=True)
    manifest = {"artifact": model, "version": version, "created_at": f"2026-12-0{version}"}
    if evaluation is not None:
        manifest["evaluation"] = evaluation
    (path / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def base(tmp_path):
    base = tmp_path / "serving"
    for version in (1, 2, 3):
        for model in ("retrieval", "item_tower", "retrieval_portable"):
            _version(base, model, version, {"models": {"two-tower": {"overall": {
                "recall@100": 0.3 + version / 100, "ndcg@10": 0.1}}}}
                if model == "retrieval" else None)
    _version(base, "ranker", 1)  # the ranker was exported with version 1 only
    return base


def _config(base):
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse((base / "models.config").read_text(), config)
    return {m.name: (list(m.model_version_policy.specific.versions), dict(m.version_labels))
            for m in config.model_config_list.config}


def test_promotions_write_labels_policies_and_the_log(base):
    registry = Registry(base)
    assert registry.aliases() == {} and registry.history() == []
    registry.promote(1, "stable", "first release", {"gate": "passed"}, by="tester")
    registry.promote(2, "canary", "candidate")
    config = _config(base)
    assert config["retrieval"] == ([1, 2], {"stable": 1, "canary": 2})
    assert config["item_tower"] == config["retrieval_portable"] == config["retrieval"]
    # the ranker has no version 2: the canary uses the newest ranker before it
    assert config["ranker"] == ([1], {"stable": 1, "canary": 1})

    registry.promote(2, "stable", "canary held")
    registry.retire("canary", "promoted")
    # the stable version before stays loaded: a rollback never waits for a load
    assert _config(base)["retrieval"] == ([1, 2], {"stable": 2})
    entry = registry.rollback("stable", "p99 above the SLO")
    assert (entry["from"], entry["to"], entry["action"]) == (2, 1, "rollback")
    assert registry.aliases() == {"stable": 1}
    assert _config(base)["retrieval"] == ([1, 2], {"stable": 1})

    log = registry.history()
    assert [(e["action"], e["alias"], e["from"], e["to"]) for e in log] == [
        ("promote", "stable", None, 1), ("promote", "canary", None, 2),
        ("promote", "stable", 1, 2), ("retire", "canary", 2, None),
        ("rollback", "stable", 2, 1)]
    assert log[0]["evidence"] == {"gate": "passed"} and log[0]["by"] == "tester"
    assert all(e["reason"] and e["time"] for e in log)

    entries = {e.version: e for e in registry.entries()}
    assert [e.version for e in registry.entries()] == [3, 2, 1]
    assert entries[1].aliases == ("stable",) and entries[3].aliases == ()
    assert entries[1].models == ("retrieval", "item_tower", "retrieval_portable", "ranker")
    assert entries[3].metrics["recall@100"] == pytest.approx(0.33)


def test_rolling_back_a_canary_retires_it_and_stable_rolls_back_to_the_one_before(base):
    registry = Registry(base)
    registry.promote(1, "stable", "first")
    registry.promote(3, "canary", "candidate")
    registry.rollback("canary", "errors above the guardrail")
    assert registry.aliases() == {"stable": 1}
    assert _config(base)["retrieval"][0] == [1]  # the canary's version unloads
    registry.promote(2, "stable", "next")
    registry.promote(3, "stable", "next again")
    assert registry.previous("stable") == 2
    registry.rollback("stable", "bad")
    assert registry.aliases() == {"stable": 2}
    registry.rollback("stable", "further back", to=1)
    assert registry.aliases() == {"stable": 1}


@pytest.mark.parametrize("action, message", [
    (lambda r: r.promote(4, "stable", "x"), "version 4 has no retrieval or item_tower"),
    (lambda r: r.promote(0, "stable", "x"), "a version is a positive integer"),
    (lambda r: r.promote(True, "stable", "x"), "a version is a positive integer"),
    (lambda r: r.promote(1, "prod", "x"), "alias must be one of stable, canary"),
    (lambda r: r.promote(1, "stable", "  "), "a promote needs a reason"),
    (lambda r: r.promote(2, "canary", "x"), "canary cannot be the only alias"),
    (lambda r: r.rollback("stable", "x"), "stable has no earlier version"),
])
def test_bad_changes_are_refused_naming_the_problem_and_change_nothing(base, action, message):
    registry = Registry(base)
    with pytest.raises(ConfigError, match=message):
        action(registry)
    assert not (base / "models.config").exists() and registry.history() == []


def test_a_version_without_its_item_tower_is_refused(base):
    shutil.rmtree(base / "item_tower" / "3")
    with pytest.raises(ConfigError, match="version 3 has no item_tower"):
        Registry(base).promote(3, "stable", "x")


def test_a_corrupt_log_or_config_is_named(base):
    registry = Registry(base)
    registry.promote(1, "stable", "first")
    with (base / "promotions.jsonl").open("a") as log:
        log.write("{not json\n")
    with pytest.raises(ConfigError, match="promotions.jsonl line 2 is not JSON"):
        registry.history()
    (base / "models.config").write_text("model_config_list { nonsense }")
    with pytest.raises(ConfigError, match="models.config is not a ModelServerConfig"):
        registry.aliases()


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_models_commands(base, tmp_path, capsys):
    code, out, _ = _run(capsys, "models", "list", "--model-base-path", base)
    assert code == 0 and "no aliases yet" in out and "0.3300" in out
    evidence = tmp_path / "gate.json"
    evidence.write_text(json.dumps({"recall@100": {"candidate": 0.33, "stable": 0.31}}))
    promote_1 = ["models", "promote", "1", "--to", "stable", "--reason", "first",
                 "--model-base-path", base]
    code, _, err = _run(capsys, *promote_1)
    assert code == 1 and "version 1 has no blessing" in err and "recsys models bless 1" in err
    code, out, _ = _run(capsys, "models", "bless", "1", "--model-base-path", base)
    assert code == 0 and "against no stable version: BLESSED" in out
    assert "skipped  off-policy estimate" in out and "no --queries given" in out
    code, out, _ = _run(capsys, *promote_1)
    assert code == 0 and "promote: stable none -> 1" in out
    code, out, _ = _run(capsys, "models", "bless", "3", "--model-base-path", base)
    assert code == 0 and "against stable 1: BLESSED" in out
    code, out, _ = _run(capsys, "models", "promote", "3", "--to", "canary", "--reason",
                        "candidate", "--evidence", evidence, "--model_base_path", base)
    assert code == 0 and "canary none -> 3" in out
    code, out, _ = _run(capsys, "models", "list", "--model-base-path", base, "--json")
    listed = json.loads(out)
    assert listed["aliases"] == {"canary": 3, "stable": 1}
    assert listed["versions"][0]["aliases"] == ["canary"]
    code, out, _ = _run(capsys, "models", "rollback", "--alias", "canary", "--reason",
                        "p99 breach", "--model-base-path", base)
    assert code == 0 and "rollback: canary 3 -> none" in out
    code, out, _ = _run(capsys, "models", "log", "--model-base-path", base, "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["action"] for line in lines] == ["promote", "promote", "rollback"]
    assert lines[1]["evidence"]["recall@100"] == {"candidate": 0.33, "stable": 0.31}
    assert lines[1]["evidence"]["blessing"]["blessed"] is True
    code, out, _ = _run(capsys, "models", "log", "--model-base-path", base)
    assert code == 0 and "rollback canary  3 -> none" in out


def test_a_worse_candidate_is_not_blessed_and_not_promoted_unless_forced(base, tmp_path,
                                                                           capsys):
    gate = tmp_path / "gate.yaml"
    gate.write_text("gate:\n  metrics:\n    recall@100: {max_drop: 0.0}\n")
    code, out, _ = _run(capsys, "models", "bless", "1", "--against", "3", "--config", gate,
                        "--model-base-path", base)
    assert code == 3 and "NOT BLESSED" in out and "more than 0.0 below stable's 0.3300" in out
    blessing = json.loads((base / "blessings" / "1.json").read_text())
    assert blessing["blessed"] is False and blessing["stable"] == 3
    code, _, err = _run(capsys, "models", "promote", "1", "--to", "stable", "--reason", "x",
                        "--model-base-path", base)
    assert code == 1 and "version 1 is not blessed" in err
    code, out, _ = _run(capsys, "models", "promote", "1", "--to", "stable", "--reason",
                        "emergency", "--force", "--model-base-path", base)
    assert code == 0
    assert Registry(base).history()[-1]["evidence"]["forced"] is True
    ope = tmp_path / "ope.json"
    ope.write_text(json.dumps({"candidate": 0.60, "stable": 0.70}))
    code, out, _ = _run(capsys, "models", "bless", "3", "--ope", ope, "--model-base-path",
                        base)
    assert code == 3 and "failed   off-policy estimate" in out
    for content, message in (("{}", "must be a JSON object with numbers candidate"),):
        ope.write_text(content)
        code, _, err = _run(capsys, "models", "bless", "3", "--ope", ope,
                            "--model-base-path", base)
        assert code == 1 and message in err
    gate.write_text("gate:\n  metrics: {recall@100: {drop: 1}}\n")
    code, _, err = _run(capsys, "models", "bless", "3", "--config", gate,
                        "--model-base-path", base)
    assert code == 1 and "gate.metrics must map metric names" in err
    code, _, err = _run(capsys, "models", "bless", "3", "--against", "prod",
                        "--model-base-path", base)
    assert code == 1 and "--against must be an alias" in err


def test_a_warm_start_blessing_compares_both_versions_on_the_candidates_test_data(
        tmp_path, capsys):
    """Version 2 scored lower than version 1 did on version 1's own (older) data, but a
    warm start scored both on its own test split, where 2 is better: that pair decides."""
    base = tmp_path / "serving"
    own = {"models": {"two-tower": {"overall": {"recall@100": 0.40, "ndcg@10": 0.10}}}}
    paired = {"models": {"two-tower": {"overall": {"recall@100": 0.30, "ndcg@10": 0.09}}},
              "baseline": {"version": 1, "models": {"two-tower": {"overall": {
                  "recall@100": 0.25, "ndcg@10": 0.08}}}}}
    for model in ("retrieval", "item_tower"):
        _version(base, model, 1, own if model == "retrieval" else None)
        _version(base, model, 2, paired if model == "retrieval" else None)
    registry = Registry(base)
    assert registry.paired_baseline(2) == (1, {"recall@100": 0.25, "ndcg@10": 0.08})
    assert registry.paired_baseline(1) is None
    code, out, _ = _run(capsys, "models", "bless", "2", "--against", "1",
                        "--model-base-path", base)
    assert code == 0 and "0.3000 vs stable 0.2500" in out
    _version(base, "retrieval", 3, {**paired, "baseline": {**paired["baseline"],
                                                           "version": 2}})
    _version(base, "item_tower", 3)
    code, out, _ = _run(capsys, "models", "bless", "3", "--against", "1",
                        "--model-base-path", base)  # paired with 2, not 1: 1's own figures
    assert code == 3 and "0.3000 is more than 0.0 below stable's 0.4000" in out


@pytest.mark.parametrize("argv, message", [
    (["models", "promote", "1", "--to", "stable", "--reason", "x", "--evidence", "EVIDENCE"],
     "is not JSON"),
    (["models", "promote", "1", "--to", "stable", "--reason", "x", "--evidence", "LIST"],
     "must hold a JSON object, got list"),
    (["models", "promote", "1", "--to", "stable", "--reason", "x", "--evidence", "ABSENT"],
     "No such file"),
    (["models", "promote", "9", "--to", "stable", "--reason", "x", "--force"],
     "version 9 has no"),
    (["models", "bless", "9"], "version 9 has no"),
    (["models", "list", "--model-base-path", "NOWHERE"], "is not a directory"),
])
def test_bad_models_flags_are_named(base, tmp_path, capsys, argv, message):
    (tmp_path / "evidence.json").write_text("{oops")
    (tmp_path / "list.json").write_text("[1]")
    argv = [{"EVIDENCE": tmp_path / "evidence.json", "LIST": tmp_path / "list.json",
             "ABSENT": tmp_path / "absent.json", "NOWHERE": tmp_path / "nowhere"}.get(a, a)
            for a in argv]
    if "--model-base-path" not in argv:
        argv += ["--model-base-path", base]
    code, _, err = _run(capsys, *argv)
    assert code != 0 and message in err, err


def test_bad_models_arguments_are_refused_by_the_parser(base, capsys):
    for argv in (["models", "promote", "1", "--to", "prod", "--reason", "x"],
                 ["models", "promote", "one", "--to", "stable", "--reason", "x"],
                 ["models", "promote", "1", "--to", "stable"]):
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in argv] + ["--model-base-path", str(base)])
        assert exc.value.code == 2


# -- a real model server following the registry ----------------------------------------------

@pytest.fixture(scope="module")
def exported(trained_model_dir, small_repo, small_data, tmp_path_factory):
    from serving_support import export_small_models

    from recsys.model_contract.arrays import to_arrays
    from recsys.model_contract.feature_spec import query_inputs
    from trainer.model_dir import ModelDir

    base = tmp_path_factory.mktemp("exported")
    export_small_models(trained_model_dir, small_repo, base)
    cfg, _, _ = ModelDir(trained_model_dir).restore()
    return base, to_arrays(small_data.test.head(2), query_inputs(cfg.model))


def test_the_model_server_follows_promotions_and_a_rollback_without_a_failed_request(
        exported, tmp_path):
    import grpc
    import tensorflow as tf
    from serving_support import start_server
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    source, queries = exported
    base = tmp_path / "serving"
    for model in ("retrieval_portable", "item_tower"):  # retrieval: the portable model's twin
        for version in (1, 2):
            shutil.copytree(source / model / "1", base / model / str(version))
    for version in (1, 2):
        shutil.copytree(source / "retrieval_portable" / "1", base / "retrieval" / str(version))
    registry = Registry(base)
    registry.promote(1, "stable", "first release")
    server = start_server(model_config_file=str(registry.config_path),
                          model_config_file_poll_wait_seconds=1)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))

    def predict(label):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "retrieval_portable"
        request.model_spec.version_label = label
        for name, value in queries.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        return stub.Predict(request, timeout=30).model_spec.version.value

    def wait_for(label, version, seconds=60):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if predict(label) == version:
                    return
            except grpc.RpcError:
                pass  # the canary label before the server has read it
            time.sleep(0.1)
        raise AssertionError(f"{label} never served version {version}")

    failures, seen, stop = [], set(), threading.Event()

    def client():
        while not stop.is_set():
            try:
                seen.add(predict("stable"))
            except grpc.RpcError as exc:
                failures.append(exc.details())

    clients = [threading.Thread(target=client) for _ in range(8)]
    try:
        assert predict("stable") == 1
        for thread in clients:
            thread.start()
        registry.promote(2, "canary", "candidate")
        wait_for("canary", 2)
        registry.promote(2, "stable", "the canary held")
        registry.retire("canary", "promoted")
        wait_for("stable", 2)
        registry.rollback("stable", "a guardrail broke")
        wait_for("stable", 1)
        time.sleep(1.5)  # keep calling across another poll of the config
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=30)
        server.stop()
    assert failures == []
    assert seen == {1, 2}


def test_the_service_serves_the_stable_label_not_the_newest_version(service_files, small_data,
                                                                    tmp_path):
    from serving.recommendations.config import ServiceConfig
    from serving.recommendations.pipeline import RecommendationRequest
    from serving.recommendations.service import build_recommender

    base = tmp_path / "models"
    shutil.copytree(service_files.base, base)
    for model in ("retrieval", "item_tower", "retrieval_portable", "ranker"):
        shutil.copytree(base / model / "1", base / model / "2")  # a newer export
    registry = Registry(base)
    registry.promote(1, "stable", "the version users get")
    cfg = ServiceConfig(repo=service_files.repo, model_base_path=base,
                        model_config_file=str(registry.config_path), model_label="stable",
                        request_deadline_ms=10_000, features_timeout_ms=3_000,
                        retrieval_timeout_ms=3_000, ranking_timeout_ms=3_000)
    user = small_data.test["user_id"].iloc[0]
    recommender = build_recommender(cfg)
    try:
        result = recommender.recommend(RecommendationRequest(user, k=5))
        assert result.tier == "full"
        assert result.model_versions["retrieval"] == 1 and result.model_versions["ranker"] == 1
    finally:
        recommender.close()
        recommender.models.close()
    with pytest.raises(ConfigError, match="model_label 'canary' is not a label of "
                                          "model_config_file"):
        build_recommender(dataclasses.replace(cfg, model_label="canary"))
