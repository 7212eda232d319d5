"""Live quality from the outcome join's ``request_outcomes`` (every answer with what its user
did with it within the attribution window): CTR and watch time per retrieval version, per
period (hour or day) and optionally per segment, with intervals; and a version against
another on the same traffic period (the canary's guardrail).

CTR is clicks over items shown, a ratio of sums; its interval is the delta method's over
users (a user's answers are not independent of each other, the users are), as the experiment
analysis computes it (``recsys.experiments.statistics``).

Guarantees: pure functions of the table; a group with fewer than two users gets no interval
(NaN), never a made-up one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from recsys.experiments.statistics import _z, compare_ratios, ratio_and_variance

PERIODS = {"hour": "h", "day": "D"}
SEGMENTS = ("device", "country")


def quality_table(requests: pd.DataFrame, period: str = "hour", segment: str | None = None,
                  alpha: float = 0.05) -> pd.DataFrame:
    """One row per (period start, version[, segment]): requests, users, exposures, clicks,
    CTR with its interval, watch time per request."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    if segment is not None and segment not in SEGMENTS:
        raise ValueError(f"segment must be one of {', '.join(SEGMENTS)}, got {segment!r}")
    frame = requests.copy()
    frame["period"] = pd.to_datetime(frame["timestamp"], utc=True).dt.floor(PERIODS[period])
    frame["version"] = frame["retrieval_version"].astype("Int64").astype(str).replace(
        "<NA>", "none")
    keys = ["period", "version"] + ([segment] if segment else [])
    if segment:
        frame[segment] = frame[segment].fillna("unknown")
    z = _z(alpha)
    rows = []
    for key, part in frame.groupby(keys, sort=True):
        users = part.groupby("user_id")[["clicks", "exposures"]].sum()
        ctr, variance = _ratio(users["clicks"].to_numpy(float),
                               users["exposures"].to_numpy(float))
        half = z * math.sqrt(variance) if variance == variance else float("nan")
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))),
                     "requests": len(part), "users": len(users),
                     "exposures": int(part["exposures"].sum()),
                     "clicks": int(part["clicks"].sum()), "ctr": ctr,
                     "ctr_low": ctr - half, "ctr_high": ctr + half,
                     "watch_time_per_request": float(part["watch_time_s"].mean())})
    return pd.DataFrame(rows, columns=[*keys, "requests", "users", "exposures", "clicks",
                                       "ctr", "ctr_low", "ctr_high", "watch_time_per_request"])


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> tuple[float, float]:
    if denominator.sum() <= 0:
        return float("nan"), float("nan")
    if len(numerator) < 2:
        return float(numerator.sum() / denominator.sum()), float("nan")
    return ratio_and_variance(numerator, denominator)


@dataclass(frozen=True)
class VersionComparison:
    """CTR of ``candidate`` against ``baseline`` on the same period's traffic."""

    baseline: str
    candidate: str
    baseline_ctr: float
    candidate_ctr: float
    relative_change: float  # candidate / baseline - 1
    low: float  # the interval of the relative change
    high: float
    p_value: float
    users: tuple[int, int]

    def to_dict(self) -> dict:
        return asdict(self)


def compare_versions(requests: pd.DataFrame, baseline: int, candidate: int,
                     alpha: float = 0.05, sequential_tau: float | None = None
                     ) -> VersionComparison:
    """The candidate's CTR against the baseline's, relative, by the delta method over users
    (each user counted in the version that served each of their answers). With
    ``sequential_tau`` (the mSPRT mixture's scale relative to the baseline's CTR, as the
    experiments' analysis uses: 0.1) the interval is always valid, for a canary looked at
    every few minutes."""
    sides = []
    for version in (baseline, candidate):
        part = requests[requests["retrieval_version"] == version]
        users = part.groupby("user_id")[["clicks", "exposures"]].sum()
        if len(users) < 2:
            raise ValueError(f"version {version} served {len(users)} user(s): at least 2 "
                             "are needed to compare")
        sides.append((users["clicks"].to_numpy(float), users["exposures"].to_numpy(float)))
    tau = None
    if sequential_tau is not None:
        tau = sequential_tau * float(sides[0][0].sum() / max(sides[0][1].sum(), 1.0))
    found = compare_ratios(sides[0], sides[1], alpha=alpha, sequential_tau=tau or None)
    return VersionComparison(str(baseline), str(candidate), found.control, found.treatment,
                             found.relative, found.relative_ci[0], found.relative_ci[1],
                             found.relative_p_value, found.users)


__all__ = ["quality_table", "compare_versions", "VersionComparison", "PERIODS", "SEGMENTS"]
