"""The canary's guardrails: a candidate serving a share of live traffic under the ``canary``
label is compared with ``stable`` on the same period, and the verdict is to wait, promote or
roll back (the canary analysis of Flagger / Argo Rollouts, on the service's own metrics).

The service counts every answer under the label whose pipeline served it
(``recsys_model_label_requests_total{model_label, tier}`` and the
``recsys_model_label_latency_seconds`` histogram). Scrapes of its ``/metrics`` at the canary's
start, at the previous analysis step and now give each label's answers over the whole canary
and over the step's interval (``LabelWindow``). The guardrails, as Flagger's metric checks:

* errors, over the step's interval: the share of the canary's answers below the full tier (a
  model error or timeout that fell back to popular items) against stable's; failed when a
  one-sided two-proportion z-test at ``error_alpha`` says it exceeds stable's by more than
  ``max_error_increase`` (noise on a few hundred answers is not a failure);
* latency, over the step's interval: the canary's p99 (from the histogram's buckets,
  interpolated as PromQL's ``histogram_quantile``) at most ``max_latency_ratio`` times
  stable's in the same interval (a loaded machine slows both), and at most
  ``max_latency_p99_ms`` when set; and its median at most ``max_median_latency_ratio`` times
  stable's (a machine that also trains makes the tail of both labels noisy; a candidate that
  does more work per request moves the median of every answer). A p99 over its ratio while
  the median and CPU checks pass is a warning (``warned``), not a failure, unless
  ``p99_ratio_alone_fails``: on a machine that trains while it serves a few hundred answers'
  p99 ratio swings by several times between two equal versions; the absolute limit always
  fails;
* cost, over the step's interval: the service's CPU seconds per canary answer (its threads'
  CPU in the label's pipelines, ``recsys_model_label_cpu_seconds_total``) at most
  ``max_cpu_ratio`` times stable's. A candidate that does more work per request (more
  candidates, a bigger model) costs capacity: at a small share of the traffic the machine
  absorbs it and both latencies look alike, and at all of it the service saturates. Skipped
  (and no bar to promotion) for a service that does not count CPU;
* CTR, over the whole canary: the always-valid interval of the canary's CTR relative to
  stable's (the delta method over users) must not lie wholly below ``-max_ctr_drop``.

When the step's interval holds fewer than ``min_step_requests`` canary answers, errors and
latency are judged on the whole canary instead.

Guarantees: a step with any failed guardrail counts one failed check; the canary is rolled
back when ``failed_checks`` steps have failed (Flagger's ``threshold``), at the step that
reaches it, whatever the time elapsed (a broken canary is not left serving until its period
ends), and at once when the CTR guardrail fails: its interval is valid at every look, so one
look wholly below ``-max_ctr_drop`` is the evidence, and a later, wider look does not undo
it (the running intersection of a confidence sequence is one too); ``promote`` only after
``min_duration_s`` with at least ``min_requests`` canary answers, at a step where every
guardrail passed (CTR included, unless ``require_ctr`` is off; a p99 warning and a skipped
CPU check do not bar it); otherwise ``wait``. Every verdict carries its checks with the
values compared and the failed-check count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

from recsys.config import (
    Config,
    boolean,
    finite_non_negative_number,
    finite_positive_number,
    in_range,
    non_empty_text,
    positive_int,
    setting,
    subset_of,
)
from recsys.monitoring.blessing import Check

LABEL_REQUESTS = "recsys_model_label_requests_total"
LABEL_LATENCY = "recsys_model_label_latency_seconds_bucket"
LABEL_CPU = "recsys_model_label_cpu_seconds_total"
SERVED_TIER = "full"
TIERS = ("full", "retrieval", "segment-popular", "global-popular")


_SHARE = in_range(0.0, 1.0, low_open=True, high_open=True)


@dataclass(frozen=True)
class CanaryConfig(Config):
    """Attributes:
        label, stable_label: the model version labels compared.
        share: the share of users the canary serves (its experiment's traffic).
        min_duration_s, min_requests: how long, and on how many canary answers, the canary
            runs before it may be promoted.
        max_error_increase: the canary's share of fallback answers, at most this above
            stable's (tested at ``error_alpha``).
        served_tiers: the tiers that are answers as designed, not fallbacks: ``full``, and
            also ``retrieval`` for a service that answers in retrieval order on purpose
            (an experiment arm's ``pipeline: retrieval`` for every user).
        error_alpha: significance of the errors guardrail's one-sided two-proportion test.
        min_step_requests: canary answers a step's interval needs to be judged on its own.
        failed_checks: failed steps that roll the canary back (Flagger's threshold).
        max_latency_ratio, max_latency_p99_ms: the canary's p99, at most this multiple of
            stable's, and at most this many ms (0: no absolute limit).
        max_median_latency_ratio: the canary's median, at most this multiple of stable's.
        p99_ratio_alone_fails: a p99 over ``max_latency_ratio`` fails the step by itself;
            off (the default), it fails only with a failed median or CPU check and is
            otherwise a warning.
        max_cpu_ratio: the service's CPU seconds per canary answer, at most this multiple of
            stable's.
        max_ctr_drop: relative; rolled back when the CTR interval lies wholly below -this.
        require_ctr: promote only with a CTR comparison (outcomes joined for the period).
        alpha: of the CTR interval.
    """

    label: str = setting("canary", non_empty_text)
    stable_label: str = setting("stable", non_empty_text)
    share: float = setting(0.1, _SHARE)
    min_duration_s: float = setting(600.0, finite_non_negative_number)
    min_requests: int = setting(200, positive_int)
    max_error_increase: float = setting(0.02, finite_non_negative_number)
    served_tiers: tuple[str, ...] = setting((SERVED_TIER,), subset_of(TIERS, non_empty=True))
    error_alpha: float = setting(0.01, _SHARE)
    min_step_requests: int = setting(50, positive_int)
    failed_checks: int = setting(2, positive_int)
    max_latency_ratio: float = setting(1.5, finite_positive_number)
    max_latency_p99_ms: float = setting(0.0, finite_non_negative_number)
    max_median_latency_ratio: float = setting(1.5, finite_positive_number)
    max_cpu_ratio: float = setting(1.5, finite_positive_number)
    p99_ratio_alone_fails: bool = setting(False, boolean)
    max_ctr_drop: float = setting(0.0, finite_non_negative_number)
    require_ctr: bool = setting(True, boolean)
    alpha: float = setting(0.05, _SHARE)


@dataclass
class LabelWindow:
    """One label's answers: counts by tier, the latency histogram's cumulative buckets and
    the CPU seconds its pipelines took."""

    tiers: dict[str, float] = field(default_factory=dict)
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound -> cumulative
    cpu_seconds: float = 0.0

    @property
    def requests(self) -> float:
        return sum(self.tiers.values())

    def error_share(self, served: tuple[str, ...] = (SERVED_TIER,)) -> float:
        """The share of answers from a tier not in ``served`` (fallbacks)."""
        n = self.requests
        return (n - sum(self.tiers.get(t, 0.0) for t in served)) / n if n else float("nan")

    def quantile(self, q: float) -> float:
        """Seconds; PromQL's ``histogram_quantile``: linear within the bucket, the highest
        finite bound when the quantile falls in the +Inf bucket."""
        bounds = sorted(self.buckets)
        total = self.buckets.get(math.inf, self.buckets[bounds[-1]] if bounds else 0.0)
        if not bounds or total <= 0:
            return float("nan")
        rank, lower, below = q * total, 0.0, 0.0
        for bound in bounds:
            count = self.buckets[bound]
            if count >= rank:
                if math.isinf(bound):
                    return max((b for b in bounds if not math.isinf(b)), default=float("nan"))
                inside = count - below
                return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
            lower, below = bound, count
        return bounds[-1]

    def minus(self, before: "LabelWindow") -> "LabelWindow":
        """The answers since ``before`` (a counter reset, a restarted service, counts from
        zero: then this window itself)."""
        if any(v < before.tiers.get(t, 0.0) for t, v in self.tiers.items()) or \
                self.requests < before.requests or self.cpu_seconds < before.cpu_seconds:
            return self
        return LabelWindow({t: v - before.tiers.get(t, 0.0) for t, v in self.tiers.items()},
                           {b: v - before.buckets.get(b, 0.0) for b, v in self.buckets.items()},
                           self.cpu_seconds - before.cpu_seconds)

    @property
    def cpu_per_answer_s(self) -> float:
        """NaN without answers or without CPU figures (a service that does not count them)."""
        n = self.requests
        return self.cpu_seconds / n if n and self.cpu_seconds > 0 else float("nan")


def label_windows(metrics_text: str) -> dict[str, LabelWindow]:
    """Each label's counts in one scrape of the service's ``/metrics`` (summed over any
    other labels, e.g. several processes)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, LabelWindow] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            label = sample.labels.get("model_label")
            if label is None:
                continue
            window = out.setdefault(label, LabelWindow())
            if sample.name == LABEL_REQUESTS:
                tier = sample.labels["tier"]
                window.tiers[tier] = window.tiers.get(tier, 0.0) + sample.value
            elif sample.name == LABEL_LATENCY:
                bound = float(sample.labels["le"])
                window.buckets[bound] = window.buckets.get(bound, 0.0) + sample.value
            elif sample.name == LABEL_CPU:
                window.cpu_seconds += sample.value
    return out


@dataclass(frozen=True)
class CanaryVerdict:
    decision: str  # wait, promote, rollback
    checks: tuple[Check, ...]
    elapsed_s: float
    failed_checks: int = 0  # failed steps so far, this one included

    def to_dict(self) -> dict:
        return {"decision": self.decision, "elapsed_s": self.elapsed_s,
                "failed_checks": self.failed_checks,
                "checks": [c.__dict__ for c in self.checks]}


def error_check(stable: LabelWindow, canary: LabelWindow, cfg: CanaryConfig) -> Check:
    """Failed when the canary's fallback share exceeds stable's by more than
    ``max_error_increase``, one-sided z-test at ``error_alpha``."""
    from statistics import NormalDist

    if not canary.requests or not stable.requests:
        return Check("errors", "skipped", f"answers: stable {stable.requests:.0f}, canary "
                                          f"{canary.requests:.0f}")
    mine, theirs = (canary.error_share(cfg.served_tiers),
                    stable.error_share(cfg.served_tiers))
    excess = mine - theirs - cfg.max_error_increase
    se = math.sqrt(mine * (1 - mine) / canary.requests + theirs * (1 - theirs) / stable.requests)
    z = excess / se if se > 0 else (math.inf if excess > 0 else -math.inf)
    p_value = NormalDist().cdf(-z)  # 0 or 1 when z is infinite
    values = {"stable": theirs, "canary": mine, "canary_requests": canary.requests,
              "stable_requests": stable.requests, "z": z, "p_value": p_value}
    passed = p_value >= cfg.error_alpha
    return Check("errors", "passed" if passed else "failed",
                 f"fallback share {mine:.2%} of {canary.requests:.0f} vs stable {theirs:.2%} "
                 f"of {stable.requests:.0f} (max increase {cfg.max_error_increase:.2%}, "
                 f"p {p_value:.3g})", values)


def latency_check(stable: LabelWindow, canary: LabelWindow, q: float, max_ratio: float,
                  max_ms: float = 0.0) -> Check:
    """The canary's ``q`` quantile against stable's: at most ``max_ratio`` times it, and at
    most ``max_ms`` (0: no absolute limit)."""
    name = "latency p50" if q == 0.5 else f"latency p{q * 100:g}"
    mine, theirs = canary.quantile(q) * 1000, stable.quantile(q) * 1000
    if math.isnan(mine) or math.isnan(theirs):
        return Check(name, "skipped", "no answers of one label in the period")
    over_ratio, over_limit = mine > max_ratio * theirs, bool(max_ms) and mine > max_ms
    problems = []
    if over_ratio:
        problems.append(f"{mine:.1f} ms > {max_ratio:g} x stable's {theirs:.1f} ms")
    if over_limit:
        problems.append(f"{mine:.1f} ms > {max_ms:g} ms")
    return Check(name, "failed" if problems else "passed",
                 "; ".join(problems) or f"{mine:.1f} ms vs stable {theirs:.1f} ms",
                 {"canary_ms": mine, "stable_ms": theirs, "over_ratio": over_ratio,
                  "over_limit": over_limit})


def latency_p99_check(stable: LabelWindow, canary: LabelWindow, cfg: CanaryConfig,
                      corroborated: bool = True) -> Check:
    """The p99 check; over its ratio only (not its absolute limit) and not
    ``corroborated`` by a failed median or CPU check, it is ``warned`` unless
    ``cfg.p99_ratio_alone_fails``."""
    check = latency_check(stable, canary, 0.99, cfg.max_latency_ratio, cfg.max_latency_p99_ms)
    if (check.status == "failed" and not check.values["over_limit"] and not corroborated
            and not cfg.p99_ratio_alone_fails):
        return Check(check.name, "warned", f"{check.detail} (not counted: the median and CPU "
                                           "checks passed)", check.values)
    return check


def latency_median_check(stable: LabelWindow, canary: LabelWindow, cfg: CanaryConfig
                         ) -> Check:
    return latency_check(stable, canary, 0.5, cfg.max_median_latency_ratio)


def cpu_check(stable: LabelWindow, canary: LabelWindow, cfg: CanaryConfig) -> Check:
    """The service's CPU per canary answer against stable's: at most ``max_cpu_ratio``
    times it. Skipped when either label has no CPU figures."""
    mine, theirs = canary.cpu_per_answer_s * 1000, stable.cpu_per_answer_s * 1000
    if math.isnan(mine) or math.isnan(theirs):
        return Check("cpu", "skipped", "no CPU figures of one label in the period (a service "
                                       "without recsys_model_label_cpu_seconds_total)")
    failed = mine > cfg.max_cpu_ratio * theirs
    return Check("cpu", "failed" if failed else "passed",
                 f"{mine:.2f} ms of CPU per answer {'>' if failed else 'vs'} "
                 f"{f'{cfg.max_cpu_ratio:g} x ' if failed else ''}stable's {theirs:.2f} ms",
                 {"canary_ms": mine, "stable_ms": theirs})


def ctr_check(comparison: Mapping | None, cfg: CanaryConfig, why_none: str = "") -> Check:
    """``comparison``: ``VersionComparison.to_dict()`` of canary against stable, or None."""
    if comparison is None:
        return Check("ctr", "skipped", why_none or "no outcomes joined for the period")
    low, high = comparison["low"], comparison["high"]
    failed = high < -cfg.max_ctr_drop
    return Check("ctr", "failed" if failed else "passed",
                 f"relative change {comparison['relative_change']:+.2%} "
                 f"[{low:+.2%}, {high:+.2%}] (rolled back below -{cfg.max_ctr_drop:.1%})",
                 dict(comparison))


def canary_verdict(stable: LabelWindow, canary: LabelWindow, comparison: Mapping | None,
                   elapsed_s: float, cfg: CanaryConfig, why_no_ctr: str = "", *,
                   step: tuple[LabelWindow, LabelWindow] | None = None,
                   failed_before: int = 0) -> CanaryVerdict:
    """``stable``, ``canary``: each label's answers since the canary began; ``step``: (stable,
    canary) since the previous step (None: the first step, the same windows);
    ``failed_before``: failed steps so far. See the module docstring."""
    step_stable, step_canary = step if step is not None else (stable, canary)
    if step_canary.requests < cfg.min_step_requests:
        step_stable, step_canary = stable, canary
    median = latency_median_check(step_stable, step_canary, cfg)
    cpu = cpu_check(step_stable, step_canary, cfg)
    corroborated = "failed" in (median.status, cpu.status)
    checks = (error_check(step_stable, step_canary, cfg), median,
              latency_p99_check(step_stable, step_canary, cfg, corroborated), cpu,
              ctr_check(comparison, cfg, why_no_ctr))
    this_step_failed = any(c.status == "failed" for c in checks)
    failed = failed_before + this_step_failed
    ctr_failed = any(c.name == "ctr" and c.status == "failed" for c in checks)
    if failed >= cfg.failed_checks or ctr_failed:  # a failed CTR check: at once
        return CanaryVerdict("rollback", checks, elapsed_s, failed)
    # a skipped CPU check (a service that does not count it) and a p99 warning do not bar
    # promotion
    ready = (not this_step_failed and elapsed_s >= cfg.min_duration_s
             and canary.requests >= cfg.min_requests
             and all(c.status == "passed" or (c.name, c.status) in (("cpu", "skipped"),
                                                                    ("latency p99", "warned"))
                     for c in checks[:-1])
             and (checks[-1].status == "passed" or not cfg.require_ctr))
    return CanaryVerdict("promote" if ready else "wait", checks, elapsed_s, failed)


__all__ = ["CanaryConfig", "LabelWindow", "label_windows", "CanaryVerdict", "canary_verdict",
           "error_check", "latency_check", "latency_p99_check", "latency_median_check",
           "cpu_check", "ctr_check"]
