"""Typed configuration of the transformer ranker: its shape and its training run, one flat
mapping (as its YAML file and the ``model_config`` of its manifest hold it).

Part of the model contract: readers of an exported ranker rebuild its input specs
(:mod:`recsys.model_contract.ranker_inputs`) from the manifest's copy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from recsys.config import (
    Config,
    config_section,
    in_range,
    non_negative_int,
    non_negative_number,
    optional,
    positive_int,
    positive_number,
    read_yaml_mapping,
    setting,
    tuple_of,
)
from recsys.model_contract.retrieval_config import feature_names

ITEM_NUMERIC_FEATURES = (
    "item_engagements_7d", "item_engagements_30d", "item_lifetime_engagements",
    "item_mean_rating_30d", "item_ctr_30d", "item_avg_watch_fraction_30d",
)
USER_NUMERIC_FEATURES = (
    "user_engagements_30d", "user_lifetime_engagements", "user_mean_rating_30d",
    "user_days_since_last_active",
)


@dataclass(frozen=True)
class RankerConfig(Config):
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
        stacking_epochs: the stacking two-tower model trains at most this many epochs (fewer
            when the retrieval model has fewer); None = the retrieval model's own. Everything
            else of its configuration is always the retrieval model's, but for
            ``stacking_members``.
        stacking_members: the stacking two-tower model's ``ensemble_members`` (at most the
            retrieval model's, each at its own ``member_temperatures`` entry: the first
            members'); None = the retrieval model's own. Fewer members train faster
            (one: about half of three's time), but the ranker learns its item table and how
            far to trust the retrieval score from the stacking model, so over an ensemble it
            then adds less (docs/ranking.md).
        max_lists: train on the lists of at most this many users, drawn at random (``seed``)
            from those with held interactions; None = every one (a list is one user's).
        epochs, batch_size (rows; whole lists per batch), learning_rate, seed: Adam training.
        retrieval_weight: the final score of a request's candidates is
            ``z(click logit) + retrieval_weight * z(two-tower score)``, both standardised over
            the request's candidates (score fusion, :mod:`trainer.ranking.fusion`); 0 = the
            ranker alone.
    """

    history_length: int = setting(30, positive_int)
    item_dim: int = setting(32, positive_int)
    feature_dim: int = setting(8, positive_int)
    num_heads: int = setting(2, positive_int)
    num_blocks: int = setting(1, positive_int)
    ff_units: int = setting(64, positive_int)
    dropout: float = setting(0.1, in_range(0.0, 1.0, high_open=True))
    hidden_units: tuple[int, ...] = setting((128, 64), tuple_of(positive_int))
    item_numeric_features: tuple[str, ...] = setting(ITEM_NUMERIC_FEATURES, feature_names)
    user_numeric_features: tuple[str, ...] = setting(USER_NUMERIC_FEATURES, feature_names)
    watch_weight: float = setting(0.2, non_negative_number)
    candidates: int = setting(200, positive_int)
    holdout_fraction: float = setting(0.2, in_range(0.0, 1.0, low_open=True, high_open=True))
    stacking_epochs: int | None = setting(4, optional(positive_int))
    stacking_members: int | None = setting(None, optional(positive_int))
    max_lists: int | None = setting(None, optional(positive_int))
    epochs: int = setting(5, positive_int)
    batch_size: int = setting(512, positive_int)
    learning_rate: float = setting(0.002, positive_number)
    seed: int = setting(42, non_negative_int)
    retrieval_weight: float = setting(0.5, non_negative_number)


def load_ranker_config(path: Path | None = None,
                       overrides: Mapping[str, Any] | None = None) -> RankerConfig:
    """The defaults, updated by the YAML file at ``path`` (RankerConfig's fields at the top
    level), then by ``overrides`` (None values ignored)."""
    raw = read_yaml_mapping(path, "of ranker settings") if path is not None else {}
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return config_section(RankerConfig, raw, "ranker")


__all__ = ["RankerConfig", "load_ranker_config", "ITEM_NUMERIC_FEATURES", "USER_NUMERIC_FEATURES"]
