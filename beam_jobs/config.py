"""Typed configuration of the feature jobs; every value is checked on construction."""

from __future__ import annotations

from dataclasses import dataclass, field

from recsys.data.schemas import EVENT_TYPES
from recsys.errors import ConfigError

POSITIVE_CAPABLE = ("click", "watch", "like", "share", "rating")
SPLITS = ("none", "temporal")


@dataclass(frozen=True)
class PositiveRule:
    """What counts as a positive interaction.

    A ``click`` needs ``dwell_time_s >= min_dwell_s``; a ``watch`` needs
    ``watch_time_s / duration_s >= min_watch_fraction`` (unknown duration: not positive unless
    the fraction is 0); a ``rating`` needs ``rating >= min_rating``; ``like`` and ``share`` always
    count. Only the types in ``event_types`` count at all.
    """

    event_types: tuple[str, ...] = ("click", "watch", "like", "rating")
    min_dwell_s: float = 10.0
    min_watch_fraction: float = 0.5
    min_rating: float = 0.0

    def __post_init__(self) -> None:
        bad = [t for t in self.event_types if t not in POSITIVE_CAPABLE]
        if bad or not self.event_types:
            raise ConfigError(f"positive event types must be a non-empty subset of "
                              f"{list(POSITIVE_CAPABLE)}, got {list(self.event_types)}")
        if self.min_dwell_s < 0 or not 0 <= self.min_watch_fraction <= 1:
            raise ConfigError("min_dwell_s must be >= 0 and min_watch_fraction in [0, 1], got "
                              f"{self.min_dwell_s} and {self.min_watch_fraction}")


@dataclass(frozen=True)
class FeatureConfig:
    """Configuration of the feature, sequence and training-data jobs.

    Attributes:
        history_length: N, how many past items each event's history keeps (most recent first).
        session_gap_s: inactivity that ends a session.
        history_event_types: which events put their item into a user's history.
        positive: what counts as a positive training example.
        split: "none", or "temporal": per user, the last ``test_fraction`` of positives (at least
            one) are test examples, and every feature is computed from the earlier events only.
        test_fraction: share of each user's positives held out by the temporal split.
        top_categories: how many preferred categories a user feature row lists.
        max_bad_ratio: a run fails if more than this share of the records read are bad.
    """

    history_length: int = 50
    session_gap_s: int = 1800
    history_event_types: tuple[str, ...] = ("click", "watch", "like", "share", "rating")
    positive: PositiveRule = field(default_factory=PositiveRule)
    split: str = "none"
    test_fraction: float = 0.2
    top_categories: int = 3
    max_bad_ratio: float = 0.01

    def __post_init__(self) -> None:
        if self.history_length <= 0:
            raise ConfigError(f"history_length must be > 0, got {self.history_length}")
        if self.session_gap_s <= 0:
            raise ConfigError(f"session_gap_s must be > 0, got {self.session_gap_s}")
        unknown = [t for t in self.history_event_types if t not in EVENT_TYPES]
        if unknown:
            raise ConfigError(f"unknown history event types {unknown}")
        if self.split not in SPLITS:
            raise ConfigError(f"split must be one of {list(SPLITS)}, got {self.split!r}")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"test_fraction must lie in (0, 1), got {self.test_fraction}")
        if self.top_categories <= 0:
            raise ConfigError(f"top_categories must be > 0, got {self.top_categories}")
        if not 0 <= self.max_bad_ratio <= 1:
            raise ConfigError(f"max_bad_ratio must lie in [0, 1], got {self.max_bad_ratio}")
