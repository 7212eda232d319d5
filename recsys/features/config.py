"""Typed configuration of the feature jobs; every value is checked on construction."""

from __future__ import annotations

from dataclasses import dataclass

from recsys.config import (
    Config,
    in_range,
    non_negative_number,
    number,
    one_of,
    positive_int,
    probability,
    setting,
    subset_of,
)
from recsys.data.schemas import EVENT_TYPES

POSITIVE_CAPABLE = ("click", "watch", "like", "share", "rating")
SPLITS = ("none", "temporal", "last_one")


@dataclass(frozen=True)
class PositiveRule(Config):
    """What counts as a positive interaction.

    A ``click`` needs ``dwell_time_s >= min_dwell_s`` (unknown dwell: not positive unless
    ``min_dwell_s`` is 0, for logs without dwell times); a ``watch`` needs
    ``watch_time_s / duration_s >= min_watch_fraction`` (unknown duration: not positive unless
    the fraction is 0); a ``rating`` needs ``rating >= min_rating``; ``like`` and ``share`` always
    count. Only the types in ``event_types`` count at all.
    """

    event_types: tuple[str, ...] = setting(("click", "watch", "like", "rating"),
                                           subset_of(POSITIVE_CAPABLE, non_empty=True))
    min_dwell_s: float = setting(10.0, non_negative_number)
    min_watch_fraction: float = setting(0.5, probability)
    min_rating: float = setting(0.0, number)


@dataclass(frozen=True)
class FeatureConfig(Config):
    """Configuration of the feature, sequence and training-data jobs.

    Attributes:
        history_length: N, how many past items each event's history keeps (most recent first).
        session_gap_s: inactivity that ends a session.
        history_event_types: which events put their item into a user's history.
        positive: what counts as a positive training example.
        split: "none"; "temporal": per user, the last ``test_fraction`` of positives (at least
            one) are test examples, and every feature is computed from the earlier events only;
            "last_one": the same with only the user's last positive held out (leave-last-one-out).
        test_fraction: share of each user's positives held out by the temporal split.
        top_categories: how many preferred categories a user feature row lists.
        max_bad_ratio: a run fails if more than this share of the records read are bad.
    """

    history_length: int = setting(50, positive_int)
    session_gap_s: int = setting(1800, positive_int)
    history_event_types: tuple[str, ...] = setting(("click", "watch", "like", "share", "rating"),
                                                   subset_of(EVENT_TYPES))
    positive: PositiveRule = setting(factory=PositiveRule)
    split: str = setting("none", one_of(SPLITS))
    test_fraction: float = setting(0.2, in_range(0.0, 1.0, low_open=True, high_open=True))
    top_categories: int = setting(3, positive_int)
    max_bad_ratio: float = setting(0.01, probability)
