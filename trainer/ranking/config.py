"""Typed configuration of the transformer ranker."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from recsys.errors import ConfigError
from trainer.config import config_section, read_yaml_mapping

ITEM_NUMERIC_FEATURES = (
    "item_engagements_7d", "item_engagements_30d", "item_lifetime_engagements",
    "item_mean_rating_30d", "item_ctr_30d", "item_avg_watch_fraction_30d",
)
USER_NUMERIC_FEATURES = (
    "user_engagements_30d", "user_lifetime_engagements", "user_mean_rating_30d",
    "user_days_since_last_active",
)


@dataclass(frozen=True)
class RankerConfig:
    """Attributes:
        history_length: recent items the transformer reads.
        item_dim: the transformer's width (two-tower item vectors are projected to it).
        feature_dim: size of category, tag and context embeddings.
        num_heads, num_blocks, ff_units, dropout: the transformer.
        hidden_units: the MLP over [candidate token, pooled history, features].
        watch_weight: weight of the watch-time head's loss next to the click head's.
        candidates: two-tower candidates per training list (and re-ranked per request).
        holdout_fraction: share of each user's latest train interactions the ranker learns
            from (the stacking two-tower model is trained on the rest, so its scores and
            candidates are as unseen as at serving time).
        epochs, batch_size (rows; whole lists per batch), learning_rate, seed: Adam training.
        retrieval_weight: the final score of a request's candidates is
            ``z(click logit) + retrieval_weight * z(two-tower score)``, both standardised over
            the request's candidates (score fusion, :mod:`trainer.ranking.fusion`); 0 = the
            ranker alone.
    """

    history_length: int = 30
    item_dim: int = 32
    feature_dim: int = 8
    num_heads: int = 2
    num_blocks: int = 1
    ff_units: int = 64
    dropout: float = 0.1
    hidden_units: tuple[int, ...] = (128, 64)
    item_numeric_features: tuple[str, ...] = ITEM_NUMERIC_FEATURES
    user_numeric_features: tuple[str, ...] = USER_NUMERIC_FEATURES
    watch_weight: float = 0.2
    candidates: int = 200
    holdout_fraction: float = 0.2
    epochs: int = 10
    batch_size: int = 512
    learning_rate: float = 0.001
    seed: int = 42
    retrieval_weight: float = 0.5

    def __post_init__(self) -> None:
        for name in ("history_length", "item_dim", "feature_dim", "num_heads", "num_blocks",
                     "ff_units", "epochs", "batch_size", "candidates"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.watch_weight < 0:
            raise ConfigError(f"watch_weight must be >= 0, got {self.watch_weight!r}")
        if (isinstance(self.retrieval_weight, bool)
                or not isinstance(self.retrieval_weight, (int, float))
                or not self.retrieval_weight >= 0):
            raise ConfigError(f"retrieval_weight must be a number >= 0, got "
                              f"{self.retrieval_weight!r}")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ConfigError(f"holdout_fraction must be in (0, 1), got "
                              f"{self.holdout_fraction!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_ranker_config(path: Path | None = None,
                       overrides: Mapping[str, Any] | None = None) -> RankerConfig:
    """The defaults, updated by the YAML file at ``path`` (RankerConfig's fields at the top
    level), then by ``overrides`` (None values ignored)."""
    raw = read_yaml_mapping(path, "of ranker settings") if path is not None else {}
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return config_section(RankerConfig, raw, "ranker")


__all__ = ["RankerConfig", "load_ranker_config", "ITEM_NUMERIC_FEATURES", "USER_NUMERIC_FEATURES"]
