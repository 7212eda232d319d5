"""From per-window verdicts to alerts: many features tested in every window would raise a false
alarm somewhere almost every time, so a window's hypothesis tests are corrected for their
number, and a feature alerts only after drifting in ``consecutive_windows`` windows in a row.

* ``correction``: ``bonferroni`` (each p-value test at ``threshold / m``, ``m`` the window's
  p-value tests: the chance of any false verdict in a window stays at most the threshold),
  ``benjamini-hochberg`` (the step-up procedure at the tests' threshold: the expected share
  of false verdicts among the window's drifting features stays at most it), or ``none``.
  Distance tests (Wasserstein, Jensen-Shannon, PSI) have no p-value and are left as they are.
* ``consecutive_windows`` (k): a feature alerts in the window where its k-th drifting window
  in a row ends; a window without drift resets its streak; a feature absent from a window
  keeps its streak.

Guarantees: ``DriftTracker.update`` is a pure function of the tracker's state and the window
(its state round-trips through ``to_dict``/``from_dict``, so a cron step can keep it in a
file); with ``bonferroni`` and features drawn from their references, a window raises a
drifting verdict with probability at most the threshold (the tests check it over seeded runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from recsys.config import Config, one_of, positive_int, setting
from recsys.monitoring.drift import P_VALUE_TESTS, DriftResult

CORRECTIONS = ("bonferroni", "benjamini-hochberg", "none")


@dataclass(frozen=True)
class AlertConfig(Config):
    """Attributes:
        consecutive_windows: drifting windows in a row before a feature alerts.
        correction: how a window's p-value tests are corrected for their number.
    """

    consecutive_windows: int = setting(3, positive_int)
    correction: str = setting("bonferroni", one_of(CORRECTIONS))


def corrected(results: Sequence[DriftResult], correction: str) -> list[DriftResult]:
    """``results`` with the p-value tests' verdicts (and thresholds) corrected for their
    number in the window."""
    tested = [i for i, r in enumerate(results) if r.test in P_VALUE_TESTS]
    out = list(results)
    m = len(tested)
    if correction == "none" or m <= 1:
        return out
    if correction == "bonferroni":
        for i in tested:
            limit = results[i].threshold / m
            out[i] = replace(results[i], threshold=limit, drift=results[i].statistic < limit)
        return out
    # Benjamini-Hochberg: reject the j smallest p-values, j the largest rank with
    # p_(j) <= j * alpha / m (alpha: the tests' own threshold, the strictest if they differ)
    alpha = min(results[i].threshold for i in tested)
    order = sorted(tested, key=lambda i: results[i].statistic)
    passing = [rank for rank, i in enumerate(order, start=1)
               if results[i].statistic <= rank * alpha / m]
    cut = max(passing, default=0)
    rejected = set(order[:cut])
    for rank, i in enumerate(order, start=1):
        out[i] = replace(results[i], threshold=rank * alpha / m, drift=i in rejected)
    return out


@dataclass(frozen=True)
class WindowVerdict:
    window: int  # the tracker's count of windows, this one included
    drifting: list[str]  # features drifting in this window, after the correction
    alerts: list[str]  # features whose streak reached consecutive_windows in this window
    streaks: dict[str, int]
    results: list[DriftResult]


@dataclass
class DriftTracker:
    """Feature streaks across windows (see the module docstring)."""

    cfg: AlertConfig = field(default_factory=AlertConfig)
    windows: int = 0
    streaks: dict[str, int] = field(default_factory=dict)

    def update(self, results: Sequence[DriftResult]) -> WindowVerdict:
        results = corrected(results, self.cfg.correction)
        self.windows += 1
        alerts = []
        for r in results:
            streak = self.streaks.get(r.feature, 0) + 1 if r.drift else 0
            self.streaks[r.feature] = streak
            if streak == self.cfg.consecutive_windows:
                alerts.append(r.feature)
        return WindowVerdict(self.windows, [r.feature for r in results if r.drift], alerts,
                             dict(self.streaks), results)

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.cfg.to_dict(), "windows": self.windows,
                "streaks": dict(self.streaks)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "DriftTracker":
        return cls(AlertConfig.from_dict(raw.get("config") or {}), int(raw.get("windows", 0)),
                   {str(k): int(v) for k, v in (raw.get("streaks") or {}).items()})


__all__ = ["AlertConfig", "DriftTracker", "WindowVerdict", "corrected", "CORRECTIONS"]
