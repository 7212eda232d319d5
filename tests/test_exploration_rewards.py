"""Rewards of the contextual bandit and OPE: weights by event type from a config section, bad
sections refused by name; `recsys bandit save`: the live state in Redis to the file OPE
reads."""

from __future__ import annotations

import argparse

import pytest

from recsys.errors import ConfigError
from recsys.exploration.rewards import RewardConfig, load_reward_config


def test_rewards_by_event_type():
    rewards = RewardConfig(click=1.0, like=0.5, skip=-0.5, watch_s=0.01)
    assert rewards.of({"event_type": "click"}) == 1.0
    assert rewards.of({"event_type": "skip"}) == -0.5
    assert rewards.of({"event_type": "impression"}) == 0.0
    assert rewards.of({"event_type": "rating", "rating": 5}) == 0.0
    assert rewards.of({"event_type": "watch", "watch_time_s": 30.0}) == pytest.approx(0.3)
    assert RewardConfig().of({"event_type": "like"}) == 0.0  # clicks only by default


def test_the_rewards_section_of_a_config_file(tmp_path):
    path = tmp_path / "worker.yaml"
    path.write_text("stream: {batch_size: 64}\nrewards: {click: 1, share: 2.5}\n")
    assert load_reward_config(path) == RewardConfig(click=1.0, share=2.5)
    assert load_reward_config(None) == RewardConfig()


@pytest.mark.parametrize("section, message", [
    ("{clicks: 1}", "unknown key.*'rewards': clicks"),
    ("{click: .nan}", "click must be a finite number"),
    ("{watch_s: -1}", "watch_s must be a finite number >= 0"),
    ("[1, 2]", "config section 'rewards' must be a mapping"),
])
def test_bad_rewards_are_refused_by_name(tmp_path, section, message):
    path = tmp_path / "worker.yaml"
    path.write_text(f"rewards: {section}\n")
    with pytest.raises(ConfigError, match=message):
        load_reward_config(path)


def test_bandit_save_writes_the_live_state_that_ope_reads(tmp_path, capsys):
    import numpy as np

    from recsys.exploration.bandit_store import BanditStore
    from recsys.exploration.features import DIMENSION
    from recsys.exploration.linucb import LinUCBState
    from recsys.stream.config import StreamConfig
    from recsys.stream.redis_connection import connect, stop_embedded
    from workflows.cli.main import main
    from workflows.cli.ope_command import run_bandit_save

    repo = tmp_path / "repo"
    cfg = StreamConfig().for_repo(repo)
    client = connect(cfg)
    try:
        out = tmp_path / "bandit.bin"
        with pytest.raises(ConfigError, match="the bandit has no statistics yet"):
            run_bandit_save(argparse.Namespace(out=out, ridge=1.0, config=None, repo=repo,
                                               redis_url=None))
        x = np.random.default_rng(0).normal(size=(5, DIMENSION))
        store = BanditStore(client)
        store.add(x.T @ x, x[0] * 2.0, shown=5)
        assert main(["bandit", "save", "--out", str(out), "--repo", str(repo),
                     "--ridge", "2"]) == 0
        assert "5 shown slots" in capsys.readouterr().out
        state = LinUCBState.from_bytes(out.read_bytes())
        assert state.updates == 5 and state.ridge == 2.0
        assert np.allclose(state.a, 2.0 * np.eye(DIMENSION) + x.T @ x)
        assert np.allclose(state.b, x[0] * 2.0)
    finally:
        client.close()
        stop_embedded(cfg.embedded_dir)
