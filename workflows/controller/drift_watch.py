"""The controller's drift windows: the serving profile's samples of the stable version that
arrived since the last check (from the hourly windows in Redis), tested against a reference,
and fed to the alert tracker.

The reference (``drift_reference``): ``serving`` (the default) is the version's own first
``drift_reference_samples`` served queries, captured once when it becomes stable: drift is
then a change in what the live service sees (a uniform sample of all it served until the
capture). With ``drift_reference_renew: drift`` the reference outlives the promotions of
routine retrains and is captured anew only once a version retrained on a drift alert is
stable: the new population is then the normal one. ``training`` is the profile the export wrote
from the training examples; but training examples and served queries differ by construction
(an example is taken at every interaction, so its history is shorter than a returning user's
query; the clock features cover the whole training period, a window one hour), so on a
running service it alarms on every window: it answers a different question, training/serving
skew, which `recsys monitor drift` and `recsys monitor skew` ask. Features named in
``drift_ignore`` (shell-style patterns; by default the clock's: hour_of_day, day_of_week and
absolute timestamps, which move with the time, not with the population) are not tested.

A controller window is "the samples since the last window", at least ``min_samples`` of them,
not a clock hour: a controller stepping every few minutes on a busy service tests every few
minutes, one on a quiet service waits until enough answers were sampled. The reservoirs keep a
uniform sample of each hour's answers, so the samples newer than the cursor are a uniform
sample of the answers newer than the cursor; but a reservoir keeps fewer of an hour's later
answers once it is full (``max_samples`` of all the hour offered), so a window late in a busy
hour holds fewer samples: size ``drift_min_samples`` below the reservoir's size divided by the
steps per hour.

Guarantees: a sample is tested in at most one window (the cursor moves past every sample
read); a window with fewer than ``min_samples`` samples is not tested and its samples wait for
the next step.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from pathlib import Path

from recsys.errors import ConfigError
from recsys.monitoring.alerts import AlertConfig, DriftTracker
from recsys.monitoring.profile import build_profile, drift_report, read_profile
from recsys.monitoring.serving_windows import one_per_user


def _hour_end_s(window: str) -> float:
    return calendar.timegm(time.strptime(window[1:], "%Y%m%d%H")) + 3600.0


def new_samples(windows, version: int, cursor_s: float) -> list[dict]:
    """The version's sampled answers newer than ``cursor_s``, oldest first."""
    names = [w for _, w in windows.windows(str(version))
             if w.startswith("h") and _hour_end_s(w) > cursor_s]
    found = [s for w in names for s in windows.read_window(str(version), w).samples
             if float(s.get("at_s", 0.0)) > cursor_s]
    return sorted(found, key=lambda s: s["at_s"])


def new_user_samples(windows, version: int, cursor_s: float) -> tuple[list[dict], float]:
    """The first of each user's sampled answers newer than ``cursor_s`` (the drift tests'
    units, ``one_per_user``), oldest first, and the newest answer's time read (the next
    cursor; ``cursor_s`` when there is none)."""
    read = new_samples(windows, version, cursor_s)
    return one_per_user(read), float(read[-1]["at_s"]) if read else cursor_s


def as_columns(samples: list[dict]) -> dict[str, list]:
    """The window as ``drift_report`` takes it: the query inputs, top scores, embeddings."""
    columns: dict[str, list] = {}
    for n, sample in enumerate(samples):
        for name, value in (sample.get("inputs") or {}).items():
            columns.setdefault(name, [None] * n).append(value)
        for column in columns.values():
            if len(column) < n + 1:
                column.append(None)
    columns["top_score"] = [s.get("top_score") for s in samples]
    columns["embedding"] = [s.get("embedding") for s in samples]
    return columns


@dataclass
class DriftWindow:
    samples: int
    first_s: float  # its first sample's time
    cursor_s: float
    drifting: list[str]
    alerts: list[str]  # features at or past their streak
    streaks: dict[str, int]
    results: list[dict]


def ignored(feature: str, patterns) -> bool:
    """Whether ``feature`` (or the list it summarises, ``name#length``) matches one of the
    shell-style ``patterns`` (``session_*``)."""
    import fnmatch

    return any(fnmatch.fnmatchcase(feature.split("#")[0], p) for p in patterns)


def serving_reference(samples: list[dict]) -> dict:
    """A reference profile of served queries (the same form as an export's)."""
    import numpy as np

    columns = as_columns(samples)
    scores = [s for s in columns.pop("top_score") if s is not None]
    embeddings = [e for e in columns.pop("embedding") if e]
    return build_profile(columns, embeddings=np.asarray(embeddings) if embeddings else None,
                         scores=np.asarray(scores) if scores else None,
                         identifiers=("history_item_ids", "user_id"))


def training_reference(base: Path, version: int) -> dict:
    profile = read_profile(base / "retrieval" / str(version))
    if profile is None:
        raise ConfigError(f"version {version} has no reference profile: the drift trigger "
                          "with drift_reference training needs one (re-export it)")
    return profile


def check_drift(windows, reference: dict, version: int, tracker: DriftTracker,
                cursor_s: float, min_samples: int, choices, ignore=()) -> DriftWindow | None:
    """Test the samples since ``cursor_s``, one per user, against ``reference`` (None when
    there are too few users yet)."""
    samples, newest_s = new_user_samples(windows, version, cursor_s)
    if len(samples) < min_samples:
        return None
    results = [r for r in drift_report(reference, as_columns(samples), choices)
               if not ignored(r.feature, ignore)]
    verdict = tracker.update(results)
    alerts = sorted(f for f, streak in verdict.streaks.items()
                    if streak >= tracker.cfg.consecutive_windows)
    return DriftWindow(len(samples), float(samples[0]["at_s"]), newest_s,
                       verdict.drifting, alerts,
                       verdict.streaks, [r.to_dict() for r in verdict.results])


def tracker_from(raw: dict | None, cfg: AlertConfig) -> DriftTracker:
    return DriftTracker(cfg) if raw is None else DriftTracker.from_dict(raw)


__all__ = ["check_drift", "new_samples", "new_user_samples", "as_columns", "DriftWindow",
           "tracker_from", "serving_reference", "training_reference"]
