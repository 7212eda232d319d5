"""Typed configuration of the synthetic platform; every value is checked on construction."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from recsys.data.synthetic.vocabulary import CATEGORIES
from recsys.errors import ConfigError


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and behaviour of the simulated platform.

    Attributes:
        users, items, days: population sizes and the length of the simulated window.
        seed: everything generated is a pure function of the config, seed included.
        end_date: the window is the ``days`` UTC days before this date (default: today), so all
            events lie in the past.
        categories: how many of the built-in categories the catalogue uses.
        initial_item_share: share of the catalogue that exists before the window; the rest
            arrives spread over the window's days.
        zipf_exponent: popularity of the item with popularity rank r is proportional to r^-s.
        surge_share: share of new items that surge to top-item popularity within hours and fade
            over a few days.
        new_user_share: share of users who sign up during the window (cold users).
        profile_gap_share: chance that each optional profile field is missing.
        mean_session_length: mean number of impressions per session.
        mean_extra_sessions: mean number of sessions beyond the first on an active day.
    """

    users: int = 10_000
    items: int = 50_000
    days: int = 14
    seed: int = 42
    end_date: dt.date | None = None
    categories: int = 24
    initial_item_share: float = 0.7
    zipf_exponent: float = 1.0
    surge_share: float = 0.02
    new_user_share: float = 0.1
    profile_gap_share: float = 0.15
    mean_session_length: float = 12.0
    mean_extra_sessions: float = 0.5

    def __post_init__(self) -> None:
        positive = {"users": self.users, "items": self.items, "days": self.days,
                    "mean_session_length": self.mean_session_length}
        for name, value in positive.items():
            if value <= 0:
                raise ConfigError(f"{name} must be > 0, got {value}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        if not 1 <= self.categories <= len(CATEGORIES):
            raise ConfigError(f"categories must lie in [1, {len(CATEGORIES)}], "
                              f"got {self.categories}")
        shares = {"initial_item_share": self.initial_item_share, "surge_share": self.surge_share,
                  "new_user_share": self.new_user_share,
                  "profile_gap_share": self.profile_gap_share}
        for name, value in shares.items():
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must lie in [0, 1], got {value}")
        if self.zipf_exponent < 0:
            raise ConfigError(f"zipf_exponent must be >= 0, got {self.zipf_exponent}")
        if self.mean_extra_sessions < 0:
            raise ConfigError(f"mean_extra_sessions must be >= 0, got {self.mean_extra_sessions}")
        today = dt.datetime.now(dt.timezone.utc).date()
        if self.end_date is not None and self.end_date > today:
            raise ConfigError(f"end_date {self.end_date} lies in the future (today is {today}, "
                              "UTC); events must be in the past")

    @property
    def window_end(self) -> dt.datetime:
        end = self.end_date or dt.datetime.now(dt.timezone.utc).date()
        return dt.datetime.combine(end, dt.time(), tzinfo=dt.timezone.utc)

    @property
    def window_start(self) -> dt.datetime:
        return self.window_end - dt.timedelta(days=self.days)
