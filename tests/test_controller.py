"""The retraining controller's decisions (workflows/controller/): drift windows from real
serving windows in Redis against a real reference profile, real retrain commands run as
subprocesses that export versions, the real registry and blessing, the canary's experiment in
a real experiments file and its guardrails on the service's real metrics text. What the
service would answer is given by a ServiceMetrics the test feeds (the closed loop with the
real service and model server is benchmarks/retraining_loop.py; the model server's side of
the label check is in tests/test_model_server_lifecycle.py)."""

import datetime as dt
import json
import random
import sys
import textwrap
import time

import numpy as np
import pytest
import yaml
from prometheus_client import generate_latest

from recsys.errors import ConfigError
from recsys.model_contract.registry import Registry
from recsys.monitoring.canary import label_windows
from recsys.monitoring.profile import build_profile, write_profile
from recsys.monitoring.serving_windows import Answer, ServingWindows
from serving.recommendations.metrics import ServiceMetrics
from workflows.cli.main import main
from workflows.controller.config import load_settings
from workflows.controller.controller import Controller, Hooks, _run
from workflows.controller.journal import read_decisions, read_state

EXPORT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    base, version, quality = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    recall = {"good": 0.41, "shuffled": 0.02}[quality]
    for model in ("retrieval", "item_tower"):
        extra = base / model / version / "assets.extra"
        extra.mkdir(parents=True)
        (extra / "manifest.json").write_text(json.dumps({"version": int(version),
            "evaluation": {"models": {"two-tower": {"overall": {"recall@100": recall,
                                                                "ndcg@10": recall / 3}}}}}))
""")


def _reference(rng, n=2000):
    return {"watch_s": rng.normal(100, 20, n).tolist(),
            "country": rng.choice(["fr", "de", "us"], n, p=[0.3, 0.3, 0.4]).tolist()}


def _export(base, version, recall, profile=None):
    for model in ("retrieval", "item_tower"):
        extra = base / model / str(version) / "assets.extra"
        extra.mkdir(parents=True)
        (extra / "manifest.json").write_text(json.dumps({"version": version, "evaluation": {
            "models": {"two-tower": {"overall": {"recall@100": recall,
                                                  "ndcg@10": recall / 3}}}}}))
    if profile is not None:
        write_profile(base / "retrieval" / str(version), profile)


@pytest.fixture
def redis_url(tmp_path):
    from recsys.stream.redis_connection import start_embedded, stop_embedded

    url = start_embedded(tmp_path / "redis")
    yield url
    stop_embedded(tmp_path / "redis")


class Service:
    """What the service's /metrics would say: a real ServiceMetrics fed by the test."""

    def __init__(self):
        self.metrics = ServiceMetrics()

    def answer(self, label, n, seconds, tier="full"):
        for _ in range(n):
            self.metrics.count_label(label, tier, seconds)

    def scrape(self, _url):
        return label_windows(generate_latest(self.metrics.registry).decode())


@pytest.fixture
def setup(tmp_path, redis_url):
    import redis

    base = tmp_path / "models"
    _export(base, 1, 0.40, build_profile(_reference(np.random.default_rng(0))))
    Registry(base).promote(1, "stable", "first", by="test")
    script = tmp_path / "export.py"
    script.write_text(EXPORT)
    experiments = tmp_path / "experiments.yaml"
    experiments.write_text("experiments:\n  - {name: colours, layer: ui, arms: [{name: a}, "
                           "{name: b}]}\n")
    config = tmp_path / "controller.yaml"

    def write(quality="good", reference="serving", **canary):
        config.write_text(yaml.safe_dump({
            "controller": {"model_base_path": str(base), "state_dir": str(tmp_path / "state"),
                           "service_url": "http://service", "experiments_file": str(experiments),
                           "redis_url": redis_url, "drift_min_samples": 200,
                           "drift_reference": reference, "drift_reference_samples": 300,
                           "cooldown_s": 600, "reload_wait_s": 0,
                           "retrain_commands": [[sys.executable, str(script),
                                                 "{model_base_path}", "{next_version}",
                                                 quality]]},
            "canary": {"min_duration_s": 600, "min_requests": 100, "require_ctr": False,
                       **canary},
            "drift": {"alerts": {"consecutive_windows": 3}}}))
        return load_settings(config)

    service = Service()
    windows = ServingWindows(redis.Redis.from_url(redis_url), max_samples=5_000,
                             rng=random.Random(0))
    return base, experiments, write, service, windows, tmp_path


def _traffic(windows, rng, at_s, n=300, shifted=False, version="1"):
    """``n`` sampled answers of stable ``version``, from the reference population or a
    shifted one (tastes moved: more watch time; a new country)."""
    for i in range(n):
        inputs = {"watch_s": float(rng.normal(130 if shifted else 100, 20)),
                  "hour_of_day": int(at_s // 10) % 24,  # the clock: ignored by default
                  "country": str(rng.choice(["fr", "de", "us", "br"],
                                            p=[0.2, 0.2, 0.3, 0.3] if shifted
                                            else [0.3, 0.3, 0.4, 0.0]))}
        windows.add([Answer(at_s + i * 0.01, version, "full", ["i1"], ["retrieval"],
                            sample={"inputs": inputs, "top_score": None, "embedding": None})])


def _controller(settings, service, windows):
    hooks = Hooks(_run, service.scrape, lambda *a: (None, "not joined"), sleep=lambda s: None)
    return Controller(settings, hooks, windows)


def test_no_shift_no_alarm_then_a_shift_retrains_canaries_and_promotes(setup):
    base, experiments, write, service, windows, tmp = setup
    controller = _controller(write(), service, windows)
    rng = np.random.default_rng(1)
    now = time.time()
    assert controller.step(now - 30)["evidence"]["drift"]["reference"] == \
        "capturing: 0 of the 300 served queries (one per user) of version 1 it needs"
    _traffic(windows, rng, now - 20)  # the stable version's first served queries
    first = controller.step(now - 10)
    assert first["decision"] == "watch"
    assert first["evidence"]["drift"]["reference"] == \
        "captured from 300 of the 300 served queries of version 1"
    assert (tmp / "state" / "reference-v1.json").exists()
    decisions = []
    for step in range(5):  # the same population: five windows, no alert
        _traffic(windows, rng, now + step * 10)
        decisions.append(controller.step(now + step * 10 + 5))
    assert [d["decision"] for d in decisions] == ["watch"] * 5
    assert all(not d["evidence"]["drift"]["alerts"] for d in decisions)
    statistics = decisions[-1]["evidence"]["drift"]["features"]
    assert {f["feature"] for f in statistics} == {"watch_s", "country"}  # no hour_of_day
    assert controller.step(now + 55)["evidence"]["drift"]["window"] is None  # no new samples

    for step in range(3):  # shifted: an alert within three windows
        at = now + 100 + step * 10
        _traffic(windows, rng, at, shifted=True)
        decision = controller.step(at + 5)
        if decision["decision"] != "watch":
            break
        assert set(decision["evidence"]["drift"]["drifting"]) == {"watch_s", "country"}
    assert decision["decision"] == "canary"
    logged = read_decisions(tmp / "state")
    assert [d["decision"] for d in logged[-2:]] == ["retrain", "canary"]
    assert logged[-2]["reason"].startswith("drift: ")
    assert logged[-2]["reason"].endswith("drifted in 3 windows in a row")
    assert decision["evidence"]["blessing"]["blessed"] is True
    assert Registry(base).aliases() == {"canary": 2, "stable": 1}
    served = yaml.safe_load(experiments.read_text())["experiments"]
    assert [e["name"] for e in served] == ["colours", "canary"]  # the team's kept
    assert served[1]["arms"] == [{"name": "v1"},
                                 {"name": "v2", "changes": {"model_label": "canary"}}]
    assert served[1]["traffic"] == pytest.approx(0.2)

    started = now + 125
    service.answer("stable", 900, 0.010)
    service.answer("canary", 150, 0.011)
    assert controller.step(started + 300)["decision"] == "wait"  # healthy, period not over
    decision = controller.step(started + 700)
    assert decision["decision"] == "promote", decision
    assert Registry(base).aliases() == {"stable": 2}
    assert [e["name"] for e in yaml.safe_load(experiments.read_text())["experiments"]] == [
        "colours"]
    history = Registry(base).history()
    assert [(e["action"], e["alias"], e["to"]) for e in history[1:]] == [
        ("promote", "canary", 2), ("promote", "stable", 2), ("retire", "canary", None)]
    assert history[2]["by"] == "recsys controller"
    assert history[2]["evidence"]["verdict"]["decision"] == "promote"
    state = read_state(tmp / "state")
    # retrained on a drift: the next step captures version 2's reference
    assert state.stage == "idle" and state.drift_version is None
    metrics = (tmp / "state" / "controller.prom").read_text()
    assert 'recsys_model_alias_version{alias="stable",model="retrieval"} 2.0' in metrics
    assert 'recsys_controller_stage{stage="idle"} 1.0' in metrics


def _drift_to_canary(setup, quality="good", reference="training", **canary):
    """(training: the export's profile, no capture step)"""
    base, experiments, write, service, windows, tmp = setup
    controller = _controller(write(quality, reference, **canary), service, windows)
    rng = np.random.default_rng(2)
    now = time.time()
    for step in range(3):
        _traffic(windows, rng, now + step * 10, shifted=True)
        decision = controller.step(now + step * 10 + 5)
    return controller, decision, now + 25


def test_a_candidate_trained_on_shuffled_labels_is_refused_by_the_gate(setup):
    base, experiments, _, _, windows, tmp = setup
    before = experiments.read_text()
    controller, decision, at = _drift_to_canary(setup, "shuffled")
    assert decision["decision"] == "refuse"
    assert decision["reason"] == "version 2 not blessed (offline recall@100, offline ndcg@10)"
    assert Registry(base).aliases() == {"stable": 1}
    assert experiments.read_text() == before
    assert json.loads((base / "blessings" / "2.json").read_text())["blessed"] is False
    # the drift persists, but the cooldown holds off another retrain
    _traffic(windows, np.random.default_rng(3), at + 10, shifted=True)
    again = controller.step(at + 20)
    assert again["decision"] == "watch" and again["evidence"]["cooling_down"]


@pytest.mark.parametrize("seconds, fallbacks, failed", [(0.2, 0, "latency p50, latency p99"),
                                                        (0.011, 30, "errors")])
def test_a_slow_or_broken_canary_is_rolled_back_when_its_steps_fail(setup, seconds, fallbacks,
                                                                    failed):
    base, experiments, _, service, _, tmp = setup
    controller, decision, at = _drift_to_canary(setup)
    assert decision["decision"] == "canary"
    for step in range(2):  # canary.failed_checks: 2 failed steps roll back
        service.answer("stable", 900, 0.010)
        service.answer("canary", 120 - fallbacks, seconds)
        service.answer("canary", fallbacks, 0.001, tier="global-popular")
        decision = controller.step(at + 60 * (step + 1))  # long before the period ends
        assert decision["evidence"]["verdict"]["failed_checks"] == step + 1
        assert decision["evidence"]["step_canary_answers"] == 120
        if step == 0:
            assert decision["decision"] == "wait"
            assert read_state(tmp / "state").canary_failed_checks == 1
    assert decision["decision"] == "rollback"
    assert decision["reason"] == f"canary guardrail failed: {failed}"
    assert Registry(base).aliases() == {"stable": 1}
    assert "canary" not in experiments.read_text()
    assert Registry(base).history()[-1]["action"] == "rollback"
    state = read_state(tmp / "state")
    assert state.stage == "idle" and state.canary_failed_checks == 0


def test_one_slow_step_is_not_a_rollback_and_later_steps_are_judged_on_their_own(setup):
    """A passing blip (the machine loaded during one step) counts one failed check; the
    next step's interval holds only what came after it, so a healthy canary is promoted."""
    base, experiments, _, service, _, tmp = setup
    controller, decision, at = _drift_to_canary(setup)
    service.answer("stable", 300, 0.010)
    service.answer("canary", 100, 0.300)  # slow during this step only
    decision = controller.step(at + 60)
    assert decision["decision"] == "wait"
    assert decision["evidence"]["verdict"]["failed_checks"] == 1
    service.answer("stable", 900, 0.010)
    service.answer("canary", 300, 0.011)
    decision = controller.step(at + 700)
    assert decision["decision"] == "promote", decision
    checks = {c["name"]: c for c in decision["evidence"]["verdict"]["checks"]}
    assert checks["latency p99"]["values"]["canary_ms"] < 20  # this step's answers only
    assert Registry(base).aliases() == {"stable": 2}


def _decision_after_a_shift_retraining_with(setup, command: tuple) -> dict:
    """The decision once a shift has triggered a retrain whose only command is ``command``."""
    _, _, write, service, windows, _ = setup
    settings = write(reference="training")
    controller = _controller(_with(settings, retrain_commands=(command,)), service, windows)
    rng = np.random.default_rng(4)
    now = time.time()
    for step in range(3):
        _traffic(windows, rng, now + step * 10, shifted=True)
        decision = controller.step(now + step * 10 + 5)
    return decision


def test_a_failing_retrain_command_is_refused_naming_it(setup):
    decision = _decision_after_a_shift_retraining_with(
        setup, (sys.executable, "-c", "raise SystemExit(4)"))
    assert decision["decision"] == "refuse"
    assert decision["reason"].endswith("-c raise SystemExit(4) exited 4")
    assert decision["reason"].startswith("retrain failed: ")
    assert Registry(setup[0]).aliases() == {"stable": 1}


def test_a_warm_start_its_own_gate_refused_is_reported_as_such(setup):
    decision = _decision_after_a_shift_retraining_with(
        setup, (sys.executable, "-c", "raise SystemExit(3)", "--warm-start", "{stable}"))
    assert decision["decision"] == "refuse"
    assert decision["reason"].startswith("the warm start's quality gate refused the "
                                         "candidate (not exported): ")
    assert decision["reason"].endswith("--warm-start 1 exited 3")
    assert Registry(setup[0]).aliases() == {"stable": 1}


def _with(settings, **controller):
    return type(settings)(settings.controller.replace(**controller), settings.gate,
                          settings.canary, settings.drift_features, settings.alerts)


def test_a_drift_retrain_runs_its_own_commands_and_knows_when_the_drift_began(setup):
    """Three windows in a row drifted: {drift_since} is the first one's first answer."""
    base, _, write, service, windows, tmp = setup
    settings = write(reference="training")
    since = tmp / "since.txt"
    drift_commands = ((sys.executable, "-c", "import sys, pathlib; pathlib.Path(sys.argv[1])"
                       ".write_text(sys.argv[2])", str(since), "{drift_since}"),
                      *settings.controller.retrain_commands)
    controller = _controller(_with(settings, drift_retrain_commands=drift_commands),
                             service, windows)
    rng = np.random.default_rng(5)
    start = 1_790_000_000.0
    _traffic(windows, rng, start)  # the same population: no streak
    assert controller.step(start + 5)["evidence"]["drift"]["alerts"] == []
    for step in range(3):
        _traffic(windows, rng, start + 10 + step * 10, shifted=True)
        decision = controller.step(start + 15 + step * 10)
    assert decision["decision"] == "canary"
    retrain = read_decisions(tmp / "state")[-2]
    began = dt.datetime.fromtimestamp(start + 10, dt.timezone.utc).isoformat()
    assert began == "2026-09-21T14:13:30+00:00"
    assert retrain["evidence"]["drift"]["since"] == began
    assert since.read_text() == began
    assert read_state(tmp / "state").candidate_trigger == "drift"


def test_a_kept_reference_outlives_routine_promotions_and_is_renewed_after_a_drift(setup):
    """drift_reference_renew: drift. A scheduled version's promotion keeps version 1's
    reference (a shift after it is still caught); once the version retrained on the drift is
    stable, its own served queries become the reference."""
    base, _, write, service, windows, tmp = setup
    settings = write(min_duration_s=10)
    controller = _controller(_with(settings, drift_reference_renew="drift",
                                   retrain_every_s=100.0, cooldown_s=0.0), service, windows)
    rng = np.random.default_rng(6)
    now = 1_790_000_000.0

    def promote_canary(at):
        service.answer("stable", 900, 0.010)
        service.answer("canary", 300, 0.010)
        decision = controller.step(at)
        assert decision["decision"] == "promote", decision
        return decision

    _traffic(windows, rng, now)
    first = controller.step(now + 5)  # captures version 1's reference; the schedule fires
    assert first["decision"] == "canary" and first["evidence"]["trigger"].startswith(
        "schedule")
    promote_canary(now + 20)
    assert Registry(base).aliases() == {"stable": 2}
    _traffic(windows, rng, now + 30, version="2")
    watched = controller.step(now + 35)
    assert watched["decision"] == "watch"
    assert watched["evidence"]["drift"]["reference_of"] == 1  # kept
    assert not (tmp / "state" / "reference-v2.json").exists()
    for step in range(3):  # a shift under version 2: caught against version 1's reference
        _traffic(windows, rng, now + 40 + step * 10, shifted=True, version="2")
        decision = controller.step(now + 45 + step * 10)
        if decision["decision"] != "watch":
            break
    assert decision["decision"] == "canary" and decision["evidence"]["trigger"].startswith(
        "drift")
    promote_canary(now + 100)
    assert Registry(base).aliases() == {"stable": 3}
    renewed = controller.step(now + 101)
    assert renewed["evidence"]["drift"]["reference"] == \
        "capturing: 0 of the 300 served queries (one per user) of version 3 it needs"


def test_a_shift_during_a_canary_is_tested_at_its_steps_and_retrained_for_after_it(setup):
    base, _, write, service, windows, tmp = setup
    settings = write(reference="training", min_duration_s=100)
    controller = _controller(_with(settings, drift_reference_renew="drift",
                                   retrain_every_s=1000.0, cooldown_s=0.0), service, windows)
    rng = np.random.default_rng(7)
    now = 1_790_000_000.0
    assert controller.step(now)["decision"] == "canary"  # the schedule's version 2
    steps = []
    for step in range(3):  # the population shifts while version 2 is the canary
        _traffic(windows, rng, now + 10 + step * 50, shifted=True)
        service.answer("stable", 300, 0.010)
        service.answer("canary", 100, 0.010)
        steps.append(controller.step(now + 40 + step * 50))
    assert [d["decision"] for d in steps] == ["wait", "wait", "promote"]
    assert [d["evidence"]["drift"]["streaks"]["country"] for d in steps] == [1, 2, 3]
    assert Registry(base).aliases() == {"stable": 2}
    _traffic(windows, rng, now + 200, shifted=True, version="2")
    retrain = controller.step(now + 210)
    assert retrain["decision"] == "canary" and retrain["evidence"]["trigger"].startswith(
        "drift: ")
    assert read_decisions(tmp / "state")[-2]["evidence"]["drift"]["since"] == \
        dt.datetime.fromtimestamp(now + 10, dt.timezone.utc).isoformat()


def _drift_with_a_model_server(setup, ready_after: int | None, wait_s: float, seed: int):
    """A drift retrain whose canary label the model server serves only after
    ``ready_after`` polls of each model (None: never); (the last decision, polls per model)."""
    base, _, write, service, windows, _ = setup
    polls: dict = {}

    def label_version(url, model, label):  # what TF Serving's metadata API would resolve
        assert url == "http://model-server:8501"
        polls[model] = polls.get(model, 0) + 1
        if ready_after is None or polls[model] <= ready_after:
            return None
        return Registry(base).aliases().get(label)

    hooks = Hooks(_run, service.scrape, lambda *a: (None, "not joined"), sleep=lambda s: None,
                  label_version=label_version)
    controller = Controller(_with(write(reference="training"),
                                  model_server_url="http://model-server:8501",
                                  label_wait_s=wait_s), hooks, windows)
    rng = np.random.default_rng(seed)
    now = time.time()
    for step in range(3):
        _traffic(windows, rng, now + step * 10, shifted=True)
        decision = controller.step(now + step * 10 + 5)
    return decision, polls


@pytest.mark.parametrize("ready_after", [0, 3])
def test_the_canarys_users_wait_until_the_model_server_serves_its_label(setup, ready_after):
    experiments = setup[1]
    decision, polls = _drift_with_a_model_server(setup, ready_after, 30.0, seed=8)
    assert decision["decision"] == "canary"
    assert polls == {"retrieval": ready_after + 1, "item_tower": ready_after + 1}
    assert "canary" in experiments.read_text()


def test_a_canary_label_the_model_server_never_serves_is_refused_before_any_user_sees_it(
        setup):
    base, experiments, *_, tmp = setup
    before = experiments.read_text()
    decision, _ = _drift_with_a_model_server(setup, None, 0.2, seed=9)
    assert decision["decision"] == "refuse"
    assert decision["reason"] == (
        "the model server did not serve version 2 as 'canary' within 0.2 s: "
        "{'retrieval': None, 'item_tower': None}")
    assert Registry(base).aliases() == {"stable": 1}  # the canary alias retired
    assert experiments.read_text() == before  # no user was sent to it
    assert read_state(tmp / "state").stage == "idle"


@pytest.mark.parametrize("section, body, message", [
    ("controller", {"retrain_commands": [["x"]], "sheduler": 1}, "sheduler"),
    ("controller", {"retrain_commands": [["recsys", "--since", "{drift_since}"]]},
     "unknown placeholder 'drift_since'"),
    ("controller", {"retrain_commands": [["x"]], "drift_reference_renew": "never"},
     "drift_reference_renew"),
    ("controller", {"retrain_commands": [["x"]], "label_wait_s": -1}, "label_wait_s"),
    ("controller", {"retrain_commands": [["recsys", "{stabel}"]]}, "unknown placeholder"),
    ("controller", {"retrain_commands": []}, "retrain_commands is empty"),
    ("controller", {"retrain_commands": ["recsys train"]}, "retrain_commands"),
    ("canary", {"share": 2}, "share"),
    ("canary", {"served_tiers": ["full", "cached"]}, "served_tiers must be a non-empty subset"),
    ("canary", {"served_tiers": []}, "served_tiers must be a non-empty subset"),
    ("gate", {"metrics": {"recall@100": {"max_dorp": 0}}}, "gate.metrics"),
    ("bogus", {}, "unknown section"),
])
def test_bad_controller_files_are_refused_naming_the_key(tmp_path, section, body, message):
    raw = {"controller": {"retrain_commands": [["true"]], "experiments_file": "e.yaml"}}
    raw[section] = {**raw.get(section, {}), **body}
    path = tmp_path / "controller.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=message):
        load_settings(path)


def test_the_cli_steps_and_reports_status(setup, capsys):
    base, _, write, *_ = setup
    settings = write()
    assert main(["controller", "step", "--config", str(settings.path)]) == 0
    assert "watch    no trigger" in capsys.readouterr().out
    assert main(["controller", "status", "--config", str(settings.path)]) == 0
    out = capsys.readouterr().out
    assert 'stage idle; aliases {"stable": 1}; 1 steps' in out
    (base.parent / "state" / "state.json").write_text("[]")
    assert main(["controller", "step", "--config", str(settings.path)]) != 0
    assert "is not the controller's state" in capsys.readouterr().err


def test_ignored_features_are_shell_patterns_over_names_and_their_list_summaries():
    from workflows.controller.drift_watch import ignored

    patterns = ("session_*", "hour_of_day")
    assert ignored("session_length", patterns) and ignored("session_recent_item_ids#length",
                                                           patterns)
    assert ignored("hour_of_day", patterns) and not ignored("user_country", patterns)


@pytest.mark.parametrize("argv, message", [
    (["run", "--interval", "0"], "--interval"),
    (["run", "--interval", "-5"], "--interval"),
    (["run", "--interval", "soon"], "--interval"),
    (["run", "--steps", "0"], "--steps"),
    (["status", "--last", "x"], "--last"),
    (["step"], "--config"),
])
def test_bad_controller_flags_are_refused_naming_the_flag(tmp_path, capsys, argv, message):
    config = [] if argv == ["step"] else ["--config", str(tmp_path / "c.yaml")]
    with pytest.raises(SystemExit) as exited:
        main(["controller", *argv, *config])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_a_missing_controller_file_is_named(tmp_path, capsys):
    assert main(["controller", "step", "--config", str(tmp_path / "nowhere.yaml")]) != 0
    assert "nowhere.yaml" in capsys.readouterr().err


def test_the_cli_runs_a_bounded_number_of_steps(setup, capsys):
    settings = setup[2]()
    assert main(["controller", "run", "--config", str(settings.path), "--steps", "2",
                 "--interval", "0.01"]) == 0
    assert capsys.readouterr().out.count("watch    no trigger") == 2
