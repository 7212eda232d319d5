"""What a slot earned: a reward per event, configured by event type.

``reward = weights[event_type] + watch_s * watch_time_s`` for an event naming the answer
(``request_id``) and slot (``position``) it came from; the slot's reward is the sum over its
events. Defaults: a click is 1, everything else 0 (clicks per answer, the value the
simulator knows exactly). A skip or dislike may weigh negatively. These are short-term
rewards, counted by the stream worker within seconds; a longer-term one (the user returning
within a day) is known only a day later and is read from the outcome join, not online.

The stream worker reads them from the ``rewards`` section of its ``--config`` file::

    rewards: {click: 1.0, like: 0.5, skip: -0.5, watch_s: 0.001}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from recsys.config import (
    Check,
    Config,
    config_section,
    finite_non_negative_number,
    is_finite,
    read_yaml_mapping,
    setting,
)

finite = Check(is_finite, "a finite number")


@dataclass(frozen=True)
class RewardConfig(Config):
    click: float = setting(1.0, finite)
    watch: float = setting(0.0, finite)
    like: float = setting(0.0, finite)
    share: float = setting(0.0, finite)
    skip: float = setting(0.0, finite)
    dislike: float = setting(0.0, finite)
    watch_s: float = setting(0.0, finite_non_negative_number)

    def of(self, event: Mapping[str, Any]) -> float:
        """The reward of one event (0 for a type without a weight, e.g. impressions)."""
        kind = event.get("event_type")
        value = float(getattr(self, kind, 0.0)) if kind in _TYPES else 0.0
        if self.watch_s and kind == "watch" and event.get("watch_time_s"):
            value += self.watch_s * float(event["watch_time_s"])
        return value


_TYPES = ("click", "watch", "like", "share", "skip", "dislike")

def load_reward_config(path: Path | None) -> RewardConfig:
    """The ``rewards`` section of the YAML file at ``path`` (the defaults without one);
    ConfigError naming an unknown event type or a bad weight."""
    if path is None:
        return RewardConfig()
    section = read_yaml_mapping(path, "with a section rewards").get("rewards") or {}
    return config_section(RewardConfig, section, "rewards")


__all__ = ["RewardConfig", "load_reward_config"]
