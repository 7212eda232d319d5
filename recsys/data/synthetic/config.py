"""Typed configuration of the synthetic platform; every value is checked on construction."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from recsys.config import (
    Config,
    int_in_range,
    non_negative_int,
    non_negative_number,
    positive_int,
    positive_number,
    probability,
    setting,
)
from recsys.data.synthetic.vocabulary import CATEGORIES
from recsys.errors import ConfigError


@dataclass(frozen=True)
class SyntheticConfig(Config):
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

    users: int = setting(10_000, positive_int)
    items: int = setting(50_000, positive_int)
    days: int = setting(14, positive_int)
    seed: int = setting(42, non_negative_int)
    end_date: dt.date | None = None
    categories: int = setting(24, int_in_range(1, len(CATEGORIES)))
    initial_item_share: float = setting(0.7, probability)
    zipf_exponent: float = setting(1.0, non_negative_number)
    surge_share: float = setting(0.02, probability)
    new_user_share: float = setting(0.1, probability)
    profile_gap_share: float = setting(0.15, probability)
    mean_session_length: float = setting(12.0, positive_number)
    mean_extra_sessions: float = setting(0.5, non_negative_number)

    def check_together(self) -> None:
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
