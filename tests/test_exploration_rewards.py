"""Rewards of the contextual bandit and OPE: weights by event type from a config section, bad
sections refused by name."""

from __future__ import annotations

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
