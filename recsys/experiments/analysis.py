"""The analysis of one experiment from the outcome join's ``user_outcomes`` rows: per arm
users, exposures and metrics; each treatment arm against the baseline with its interval and
p-value (fixed-horizon, CUPED-adjusted, always valid); sample-ratio checks on users and on
exposures; Benjamini-Hochberg across metrics; a breakdown by segment.

Metrics (the user is the unit of randomisation and of every variance):

=================  =========================================  ==============================
name               value                                      method (``statistics.py``)
=================  =========================================  ==============================
ctr                clicks / exposures, summed over users       ratio of sums, delta method
clicks_per_user    clicks per user                              difference of means (Welch)
engagements        clicks + likes + shares per user             difference of means (Welch)
watch_time_s       attributed watch time per user               difference of means (Welch)
return_d1, _d7     share of users active N days after their     difference of means (Welch),
                   first exposure (users whose day N is in      over the users it is known
                   the data)                                    for
=================  =========================================  ==============================

CUPED: with ``covariates`` (each user's pre-exposure value, e.g. Feast's
``user_engagements_30d`` at their first exposure), each metric is adjusted with the covariate
pooled over the arms (a ratio is linearised first: ``(clicks - r exposures) / mean
exposures``); the report says by how much the interval narrowed.

Guarantees: the figures are a pure function of the rows, the definition and the options; an
arm with fewer than 2 users gives no comparison (said in ``notes``), never a made-up one.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd

from recsys.experiments.definitions import INTERLEAVED_ARM, Experiment
from recsys.experiments.interleaving import preference_test
from recsys.experiments.statistics import (
    Comparison,
    SampleRatio,
    benjamini_hochberg,
    compare_means,
    compare_ratios,
    cuped,
    sample_ratio_check,
)

SEGMENT_COLUMNS = ("country", "device", "language", "returning")
PRIMARY = "ctr"


@dataclass(frozen=True)
class Metric:
    name: str
    numerator: str  # a column, or "engagements"
    denominator: str | None = None  # a ratio metric's denominator column
    known_only: bool = False  # rows where the numerator is null are left out


METRICS = (
    Metric("ctr", "clicks", "exposures"),
    Metric("clicks_per_user", "clicks"),
    Metric("engagements", "engagements"),
    Metric("watch_time_s", "watch_time_s"),
    Metric("return_d1", "returned_d1", known_only=True),
    Metric("return_d7", "returned_d7", known_only=True),
)


@dataclass(frozen=True)
class ArmSummary:
    arm: str
    weight: float
    users: int
    exposures: int
    values: dict[str, float]


@dataclass(frozen=True)
class MetricResult:
    metric: str
    arm: str  # the treatment arm compared with the baseline
    fixed: Comparison  # fixed-horizon interval
    sequential: Comparison  # always valid (mSPRT)
    cuped: Comparison | None = None
    cuped_narrowing: float | None = None  # 1 - width(cuped) / width(fixed)
    adjusted_p: float = math.nan  # Benjamini-Hochberg over this arm's metrics' relative p


@dataclass
class Analysis:
    experiment: str
    baseline: str
    alpha: float
    arms: list[ArmSummary]
    srm_users: SampleRatio | None
    srm_exposures: SampleRatio | None
    results: list[MetricResult]
    segments: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    interleaving: dict | None = None  # an interleaving experiment's preference test

    def to_dict(self) -> dict:
        return _plain(asdict(self))

    def result(self, metric: str, arm: str) -> MetricResult:
        return next(r for r in self.results if r.metric == metric and r.arm == arm)


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return _plain(value.item())
    return value


def _with_engagements(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.copy()
    rows["engagements"] = rows["clicks"] + rows["likes"] + rows["shares"]
    return rows


def _arm_value(rows: pd.DataFrame, metric: Metric) -> float:
    if metric.denominator:
        total = rows[metric.denominator].sum()
        return float(rows[metric.numerator].sum() / total) if total else math.nan
    values = rows[metric.numerator].dropna()
    return float(values.mean()) if len(values) else math.nan


def _per_user(rows: pd.DataFrame, metric: Metric) -> pd.DataFrame:
    return rows[rows[metric.numerator].notna()] if metric.known_only else rows


def _compare(metric: Metric, control: pd.DataFrame, treatment: pd.DataFrame, alpha: float,
             tau: float | None) -> Comparison:
    if metric.denominator:
        return compare_ratios(
            (control[metric.numerator].to_numpy(float), control[metric.denominator].to_numpy(
                float)),
            (treatment[metric.numerator].to_numpy(float),
             treatment[metric.denominator].to_numpy(float)), alpha, sequential_tau=tau)
    return compare_means(control[metric.numerator].to_numpy(float),
                         treatment[metric.numerator].to_numpy(float), alpha, sequential_tau=tau)


def _linearised(rows: pd.DataFrame, metric: Metric) -> np.ndarray:
    """Per-user values whose mean is the arm's metric and whose variance over n is the
    estimate's (a ratio: ``r + (num - r den) / mean(den)``, the delta method's linearisation)."""
    num = rows[metric.numerator].to_numpy(float)
    if not metric.denominator:
        return num
    den = rows[metric.denominator].to_numpy(float)
    ratio = num.sum() / den.sum()
    return ratio + (num - ratio * den) / den.mean()


def _cuped_compare(metric: Metric, control: pd.DataFrame, treatment: pd.DataFrame,
                   alpha: float) -> Comparison | None:
    covariate = pd.concat([control["covariate"], treatment["covariate"]])
    if covariate.isna().all():
        return None
    x = covariate.fillna(covariate.mean()).to_numpy(float)
    y = np.concatenate([_linearised(control, metric), _linearised(treatment, metric)])
    adjusted, _ = cuped(y, x)  # theta pooled over both arms
    n_c = len(control)
    comparison = compare_means(adjusted[:n_c], adjusted[n_c:], alpha)
    return dataclasses.replace(comparison, method=comparison.method + ", CUPED" + (
        " on the linearised ratio" if metric.denominator else ""))


def _width(c: Comparison) -> float:
    return c.ci[1] - c.ci[0]


def analyze(rows: pd.DataFrame, experiment: Experiment, alpha: float = 0.05,
            sequential_tau: float | None = None,
            covariates: Mapping[str, float] | None = None,
            segments: tuple[str, ...] = SEGMENT_COLUMNS) -> Analysis:
    """The analysis of ``experiment`` from its ``user_outcomes`` rows (other experiments' rows
    are ignored). ``sequential_tau`` is the mSPRT mixture's scale for each metric, relative
    to the baseline's value (default 0.1: effects of about 10%); ``covariates`` maps user id
    to the pre-exposure value used by CUPED."""
    rows = _with_engagements(rows[rows["experiment"] == experiment.name])
    if experiment.interleaved:
        return _interleaving(rows, experiment, alpha)
    weights = {arm.name: arm.weight for arm in experiment.arms}
    notes: list[str] = []
    unknown = sorted(set(rows["arm"]) - set(weights))
    if unknown:
        notes.append(f"rows of arms not in the definition left out: {unknown}")
        rows = rows[rows["arm"].isin(list(weights))]
    if covariates is not None:
        rows = rows.assign(covariate=rows["user_id"].map(covariates).astype(float))
    by_arm = {name: rows[rows["arm"] == name] for name in weights}
    arms = [ArmSummary(name, weights[name], len(part), int(part["exposures"].sum()),
                       {m.name: _arm_value(part, m) for m in METRICS})
            for name, part in by_arm.items()]
    srm_users = srm_exposures = None
    if sum(a.users for a in arms) > 0:
        srm_users = sample_ratio_check([a.users for a in arms], [a.weight for a in arms])
        srm_exposures = sample_ratio_check([a.exposures for a in arms],
                                           [a.weight for a in arms],
                                           cluster_sizes=rows["exposures"].to_numpy())
        if srm_users.mismatch:
            notes.append(f"sample ratio mismatch on users (p = {srm_users.p_value:.2g}): the "
                         "split is broken; do not trust the comparisons")
    results: list[MetricResult] = []
    control_rows = by_arm[experiment.baseline]
    for arm in (a for a in weights if a != experiment.baseline):
        arm_results = []
        for metric in METRICS:
            control = _per_user(control_rows, metric)
            treatment = _per_user(by_arm[arm], metric)
            if len(control) < 2 or len(treatment) < 2:
                notes.append(f"{metric.name}: {arm} or {experiment.baseline} has fewer than 2 "
                             "users with a value; not compared")
                continue
            try:
                fixed = _compare(metric, control, treatment, alpha, None)
                base = abs(fixed.control) or 1.0
                tau = (sequential_tau if sequential_tau is not None else 0.1) * base
                sequential = _compare(metric, control, treatment, alpha, tau)
            except ValueError as exc:
                notes.append(f"{metric.name}: {exc}")
                continue
            adjusted = narrowing = None
            if covariates is not None:
                adjusted = _cuped_compare(metric, control, treatment, alpha)
                if adjusted is not None and _width(fixed) > 0:
                    narrowing = 1 - _width(adjusted) / _width(fixed)
            arm_results.append(MetricResult(metric.name, arm, fixed, sequential, adjusted,
                                            narrowing))
        adjusted_p = benjamini_hochberg([r.fixed.relative_p_value for r in arm_results])
        results.extend(MetricResult(r.metric, r.arm, r.fixed, r.sequential, r.cuped,
                                    r.cuped_narrowing, float(p))
                       for r, p in zip(arm_results, adjusted_p, strict=True))
    return Analysis(experiment.name, experiment.baseline, alpha, arms, srm_users,
                    srm_exposures, results,
                    _segments(by_arm, experiment, alpha, segments), notes)


def _interleaving(rows: pd.DataFrame, experiment: Experiment, alpha: float) -> Analysis:
    """Team-draft interleaving: each user prefers the arm whose team got more of their
    clicks; a sign test over users with a preference (``interleaving.preference_test``)."""
    first, second = (arm.name for arm in experiment.arms)
    credits = []
    for teams in rows["team_clicks"]:
        teams = list(teams) if teams is not None else []
        credits.append((teams.count(first), teams.count(second)))
    preference = preference_test(credits)
    winner = None
    if preference.p_value < alpha:
        winner = first if preference.users_preferring_a > preference.users_preferring_b \
            else second
    summary = {"arms": [first, second], "users": len(rows),
               "users_preferring": [preference.users_preferring_a,
                                    preference.users_preferring_b],
               "ties": preference.ties, "share_preferring_first": preference.share_a,
               "p_value": preference.p_value, "winner": winner,
               "method": "team-draft interleaving, sign test over users (binomial)"}
    arms = [ArmSummary(INTERLEAVED_ARM, 1.0, len(rows), int(rows["exposures"].sum()),
                       {m.name: _arm_value(rows, m) for m in METRICS})]
    return Analysis(experiment.name, first, alpha, arms, None, None, [], [], [],
                    interleaving=summary)


def _segments(by_arm: dict[str, pd.DataFrame], experiment: Experiment, alpha: float,
              columns: tuple[str, ...]) -> list[dict]:
    """The primary metric per segment value (fixed-horizon; a breakdown, not a decision)."""
    metric = next(m for m in METRICS if m.name == PRIMARY)
    out = []
    control_all = by_arm[experiment.baseline]
    for arm, treatment_all in by_arm.items():
        if arm == experiment.baseline:
            continue
        for column in columns:
            values = pd.concat([control_all[column], treatment_all[column]]).dropna().unique()
            for value in sorted(values, key=str):
                control = control_all[control_all[column] == value]
                treatment = treatment_all[treatment_all[column] == value]
                if len(control) < 2 or len(treatment) < 2:
                    continue
                try:
                    c = _compare(metric, control, treatment, alpha, None)
                except ValueError:
                    continue
                out.append({"arm": arm, "segment": column, "value": _plain(value),
                            "users": [len(control), len(treatment)], "metric": metric.name,
                            "control": c.control, "treatment": c.treatment,
                            "relative": c.relative, "relative_ci": list(c.relative_ci),
                            "p_value": c.p_value})
    return out


def format_table(analysis: Analysis) -> str:
    """The analysis as a text table: arms, then each metric's comparison."""
    lines = [f"experiment {analysis.experiment} (baseline {analysis.baseline}, "
             f"alpha {analysis.alpha})"]
    names = [m.name for m in METRICS]
    lines.append(f"{'arm':<14}{'users':>8}{'exposures':>11}"
                 + "".join(f"{n:>16}" for n in names))
    for arm in analysis.arms:
        lines.append(f"{arm.arm:<14}{arm.users:>8}{arm.exposures:>11}"
                     + "".join(f"{arm.values[n]:>16.4g}" for n in names))
    for label, srm in (("users", analysis.srm_users), ("exposures", analysis.srm_exposures)):
        if srm is not None:
            flag = "MISMATCH" if srm.mismatch else "ok"
            lines.append(f"sample ratio ({label}): {list(srm.counts)} against shares "
                         f"{[round(s, 3) for s in srm.expected_shares]}: p = "
                         f"{srm.p_value:.3g} {flag}")
    lines.append(f"{'metric':<16}{'arm':<12}{'uplift':>9}  {'95% CI (fixed)':<20}"
                 f"{'p':>8}{'p (BH)':>8}  {'always valid CI':<22}{'CUPED CI':<20}"
                 f"{'narrower':>9}")
    for r in analysis.results:
        cup = r.cuped
        lines.append(
            f"{r.metric:<16}{r.arm:<12}{_pct(r.fixed.relative):>9}  "
            f"{_interval(r.fixed.relative_ci):<20}{r.fixed.relative_p_value:>8.3g}"
            f"{r.adjusted_p:>8.3g}  {_interval(r.sequential.relative_ci):<22}"
            f"{_interval(cup.relative_ci) if cup else '-':<20}"
            f"{_pct(r.cuped_narrowing) if r.cuped_narrowing is not None else '-':>9}")
    if analysis.interleaving is not None:
        il = analysis.interleaving
        lines.append(f"interleaving {il['arms'][0]} vs {il['arms'][1]}: users preferring "
                     f"{il['users_preferring'][0]} / {il['users_preferring'][1]} "
                     f"({il['ties']} ties), p = {il['p_value']:.3g}, winner: "
                     f"{il['winner'] or 'none yet'}")
    lines.extend(f"note: {n}" for n in analysis.notes)
    return "\n".join(lines)


def _pct(value: float) -> str:
    return "nan" if value is None or not math.isfinite(value) else f"{value:+.1%}"


def _interval(ci: tuple[float, float]) -> str:
    return f"[{_pct(ci[0])}, {_pct(ci[1])}]"


__all__ = ["Analysis", "ArmSummary", "MetricResult", "Metric", "METRICS", "analyze",
           "format_table", "SEGMENT_COLUMNS"]
