"""The retraining loop's simulated clock, without running the loop (that is
``benchmarks/retraining_loop.py``): day 0 is the day the demo's synthetic history ends; the
loop's copy of the lake leaves out the demo's own later traffic; the controller's
materializations backfill from day 0; a clock that would run past today is refused; the
warm start and the blessing judge candidates within the logged answers."""

from __future__ import annotations

import datetime as dt
import shutil

import pyarrow.dataset as ds
import pytest

from recsys.data.lake import Lake
from recsys.data.synthetic import SyntheticConfig, generate
from recsys.model_contract.registry import REQUIRED, Registry
from workflows.controller.config import load_settings
from workflows.retraining_loop import LoopConfig, clock_start_s, controller_file, prepare

END = dt.date(2026, 11, 1)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A demo's layout: a generated lake whose history ends on END, plus one later day of
    traffic (the demo's own experiment), a feature repository and a version 1."""
    root = tmp_path_factory.mktemp("demo")
    generate(SyntheticConfig(users=40, items=100, days=2, seed=3, end_date=END),
             Lake(root / "lake", create=True), progress=False)
    events = root / "lake" / "events"
    last = sorted(events.iterdir())[-1]
    shutil.copytree(last, events / f"event_date={END.isoformat()}")
    (root / "feature_repo").mkdir()
    (root / "feature_repo" / "feature_store.yaml").write_text("project: recsys\n")
    for model in REQUIRED:
        (root / "models" / "serving" / model / "1").mkdir(parents=True)
    return root


def test_day_zero_is_the_end_of_the_history_and_later_traffic_is_left_out(demo, tmp_path):
    start = clock_start_s(demo / "lake")
    assert start == dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc).timestamp()
    lake, repo, models = prepare(demo, tmp_path / "loop", simulated_clock=True)
    dates = sorted(p.name for p in (lake / "events").iterdir())
    assert dates == ["event_date=2026-10-30", "event_date=2026-10-31"]
    days = ds.dataset(lake / "events", partitioning="hive").to_table(
        columns=["timestamp"]).column("timestamp").to_pylist()
    assert max(days) < dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    assert (repo / "feature_store.yaml").exists()
    assert Registry(models).aliases() == {"stable": 1}
    # the compressed clock keeps the whole lake
    lake, _, _ = prepare(demo, tmp_path / "compressed", simulated_clock=False)
    assert len(list((lake / "events").iterdir())) == 3


def test_the_controllers_materializations_backfill_from_day_zero(demo, tmp_path):
    start = clock_start_s(demo / "lake")
    lake, repo, models = prepare(demo, tmp_path / "loop", simulated_clock=True)
    path = controller_file(tmp_path, lake, repo, models, "http://127.0.0.1:1",
                           "redis://127.0.0.1:1", LoopConfig(), start)
    commands = load_settings(path).controller.retrain_commands
    materialize = next(c for c in commands if "materialize" in c)
    assert materialize[-2:] == ["--start-date", "2026-11-01T00:00:00+00:00"]
    plain = controller_file(tmp_path, lake, repo, models, "http://127.0.0.1:1",
                            "redis://127.0.0.1:1", LoopConfig())
    assert "--start-date" not in next(c for c in load_settings(plain).controller
                                      .retrain_commands if "materialize" in c)


def test_retrieval_order_is_served_by_two_identical_arms_that_the_canary_counts_as_served(
        demo, tmp_path):
    import yaml

    from recsys.experiments.definitions import parse_experiments
    from workflows.retraining_loop import serving_order

    experiments = parse_experiments(yaml.safe_load(serving_order("retrieval")))
    (only,) = experiments.experiments
    assert [a.changes.pipeline for a in only.arms] == ["retrieval", "retrieval"]
    assert parse_experiments(yaml.safe_load(serving_order("full"))).experiments == ()
    with pytest.raises(ValueError, match="pipeline must be"):
        serving_order("ranker")
    lake, repo, models = prepare(demo, tmp_path / "loop", simulated_clock=True)
    for pipeline, served in (("retrieval", ("full", "retrieval")), ("full", ("full",))):
        path = controller_file(tmp_path, lake, repo, models, "http://127.0.0.1:1",
                               "redis://127.0.0.1:1", LoopConfig(pipeline=pipeline))
        assert load_settings(path).canary.served_tiers == served


def test_the_loop_gates_on_the_logged_answers_not_the_catalogue(demo, tmp_path):
    from workflows.retraining_loop import bad_candidate_commands

    lake, repo, models = prepare(demo, tmp_path / "loop", simulated_clock=True)
    settings = load_settings(controller_file(tmp_path, lake, repo, models, "http://127.0.0.1:1",
                                             "redis://127.0.0.1:1", LoopConfig()))
    assert set(settings.gate.metrics) == {"slate_auc"}
    for commands in (settings.controller.retrain_commands, bad_candidate_commands(repo,
                                                                                 tmp_path)):
        train = list(next(c for c in commands if "--warm-start" in c))
        assert train[train.index("--gate-metric") + 1] == "slate_auc"
        assert train[train.index("--lake") + 1] == "{lake}"


def test_a_scheduled_warm_start_every_simulated_day_is_the_controllers_schedule(demo, tmp_path):
    lake, repo, models = prepare(demo, tmp_path / "loop", simulated_clock=True)
    for days, seconds in ((0.0, 0.0), (1.0, 86_400.0), (0.5, 43_200.0)):
        path = controller_file(tmp_path, lake, repo, models, "http://127.0.0.1:1",
                               "redis://127.0.0.1:1", LoopConfig(retrain_every_days=days))
        assert load_settings(path).controller.retrain_every_s == seconds


def test_a_drift_warm_start_learns_from_the_drifts_start_with_its_own_replay(demo, tmp_path):
    lake, repo, models = prepare(demo, tmp_path / "loop", simulated_clock=True)

    def warm_starts(cfg: LoopConfig) -> dict[str, list[str]]:
        controller = load_settings(controller_file(
            tmp_path, lake, repo, models, "http://127.0.0.1:1", "redis://127.0.0.1:1",
            cfg)).controller
        assert controller.drift_reference_renew == "drift"  # routine promotions keep it
        return {name: list(next(c for c in getattr(controller, name) if "--warm-start" in c))
                for name in ("retrain_commands", "drift_retrain_commands")
                if getattr(controller, name)}

    plain = warm_starts(LoopConfig(replay_ratio=0.5))
    assert set(plain) == {"retrain_commands"} and "--since" not in plain["retrain_commands"]
    train = plain["retrain_commands"]
    assert train[train.index("--replay-ratio") + 1] == "0.5"
    both = warm_starts(LoopConfig(drift_replay_ratio=0.1))
    drift = both["drift_retrain_commands"]
    assert drift[drift.index("--since") + 1] == "{drift_since}"
    assert drift[drift.index("--replay-ratio") + 1] == "0.1"
    assert both["retrain_commands"][both["retrain_commands"].index("--replay-ratio") + 1] == "1"
    assert "--ips-clip" not in both["retrain_commands"]
    weighted = warm_starts(LoopConfig(drift_replay_ratio=0.1, ips_clip=20))
    for command in weighted.values():  # every warm start weighs its clicks
        assert command[command.index("--ips-clip") + 1] == "20"
    assert all("--forget-users" not in c for c in weighted.values())
    forgetting = warm_starts(LoopConfig(drift_replay_ratio=0.1, drift_forget_users=True))
    assert "--forget-users" in forgetting["drift_retrain_commands"]  # the drift's only
    assert "--forget-users" not in forgetting["retrain_commands"]


def test_the_loops_exploration_is_served_by_the_same_identical_arms():
    import yaml

    from recsys.errors import ConfigError
    from recsys.experiments.definitions import parse_experiments
    from workflows.retraining_loop import serving_order

    for pipeline, order in (("retrieval", "retrieval"), ("full", "full")):
        text = serving_order(pipeline, "uniform:max_explored_share=0.3,pool=1000")
        (only,) = parse_experiments(yaml.safe_load(text)).experiments
        assert [a.changes.pipeline for a in only.arms] == [order, order]
        assert {(a.changes.exploration.policy, a.changes.exploration.pool)
                for a in only.arms} == {("uniform", 1000)}
    with pytest.raises(ConfigError, match="pool"):
        serving_order("retrieval", "uniform:pool=0")
