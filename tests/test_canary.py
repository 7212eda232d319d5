"""The canary's guardrails (recsys/monitoring/canary.py): label windows read from the
service's own metrics text, PromQL's quantile, the verdict's rules, and the CTR guardrail's
false rollbacks over repeated looks at A/A canaries."""

import math

import numpy as np
import pandas as pd
import pytest
from prometheus_client import generate_latest

from recsys.errors import ConfigError
from recsys.monitoring.canary import (
    CanaryConfig,
    LabelWindow,
    canary_verdict,
    error_check,
    label_windows,
)
from recsys.monitoring.live_quality import compare_versions
from serving.recommendations.metrics import ServiceMetrics


def _scrape(answers: dict[str, list[tuple[str, float]]], cpu_ms: float = 2.0) -> str:
    """The service's real metrics after ``answers``: label -> [(tier, seconds)], each
    pipeline taking ``cpu_ms`` of CPU (0: a service that does not count it)."""
    metrics = ServiceMetrics()
    for label, served in answers.items():
        for tier, seconds in served:
            metrics.count_label(label, tier, seconds)
            if cpu_ms:
                metrics.label_cpu.labels(label).inc(cpu_ms / 1000)
    return generate_latest(metrics.registry).decode()


def test_label_windows_read_the_service_metrics_and_subtract_an_earlier_scrape():
    before = label_windows(_scrape({"stable": [("full", 0.004)] * 10}))
    after = label_windows(_scrape({"stable": [("full", 0.004)] * 30 + [("retrieval", 0.2)],
                                   "canary": [("full", 0.02)] * 5}))
    window = after["stable"].minus(before["stable"])
    assert window.tiers == {"full": 20.0, "retrieval": 1.0}
    assert window.cpu_seconds == pytest.approx(21 * 0.002)
    assert window.cpu_per_answer_s == pytest.approx(0.002)
    assert window.requests == 21 and window.error_share() == pytest.approx(1 / 21)
    assert window.error_share(("full", "retrieval")) == 0.0  # retrieval order on purpose
    assert after["canary"].minus(LabelWindow()).tiers == {"full": 5.0}
    # a restarted service counts from zero: the later scrape is the window
    assert label_windows(_scrape({"stable": [("full", 0.004)]}))["stable"].minus(
        after["stable"]).requests == 1


def test_the_quantile_is_promql_histogram_quantile():
    # 100 answers: 90 in (0.005, 0.0075], 10 in (0.05, 0.075]
    window = LabelWindow({"full": 100.0}, {0.005: 0.0, 0.0075: 90.0, 0.05: 90.0,
                                           0.075: 100.0, math.inf: 100.0})
    assert window.quantile(0.5) == pytest.approx(0.005 + 0.0025 * 50 / 90)
    assert window.quantile(0.99) == pytest.approx(0.05 + 0.025 * 9 / 10)
    over = LabelWindow({"full": 10.0}, {0.1: 5.0, math.inf: 10.0})
    assert over.quantile(0.99) == 0.1  # in +Inf: the highest finite bound
    assert math.isnan(LabelWindow().quantile(0.99))


def _windows(canary_seconds: float, canary_fallbacks: int = 0, n: int = 400):
    stable = label_windows(_scrape({"stable": [("full", 0.010)] * n}))["stable"]
    canary = label_windows(_scrape({"canary": [("full", canary_seconds)] * (n - canary_fallbacks)
                                    + [("global-popular", 0.001)] * canary_fallbacks}))
    return stable, canary["canary"]


GOOD_CTR = {"relative_change": 0.01, "low": -0.05, "high": 0.07}
BAD_CTR = {"relative_change": -0.3, "low": -0.4, "high": -0.2}


def test_a_healthy_canary_waits_for_its_period_then_is_promoted():
    cfg = CanaryConfig(min_duration_s=600, min_requests=200)
    stable, canary = _windows(0.011)
    assert canary_verdict(stable, canary, GOOD_CTR, 300, cfg).decision == "wait"
    assert canary_verdict(stable, canary, None, 900, cfg).decision == "wait"  # no CTR yet
    verdict = canary_verdict(stable, canary, GOOD_CTR, 900, cfg)
    assert verdict.decision == "promote"
    assert [c.name for c in verdict.checks] == ["errors", "latency p50", "latency p99",
                                                "cpu", "ctr"]
    assert [c.status for c in verdict.checks] == ["passed"] * 5
    assert canary_verdict(stable, canary, None, 900,
                          CanaryConfig(min_duration_s=600, require_ctr=False)
                          ).decision == "promote"
    few = label_windows(_scrape({"canary": [("full", 0.011)] * 50}))["canary"]
    assert canary_verdict(stable, few, GOOD_CTR, 900, cfg).decision == "wait"


@pytest.mark.parametrize("seconds, fallbacks, ctr, failed", [
    (0.2, 0, GOOD_CTR, ["latency p50", "latency p99"]),  # slow: 20 x stable's
    (0.011, 40, GOOD_CTR, ["errors"]),  # 10% fallbacks against none
])
def test_a_failed_guardrail_counts_and_rolls_back_at_the_threshold(seconds, fallbacks, ctr,
                                                                   failed):
    stable, canary = _windows(seconds, fallbacks)
    first = canary_verdict(stable, canary, ctr, 5, CanaryConfig())
    assert first.decision == "wait" and first.failed_checks == 1  # threshold 2
    verdict = canary_verdict(stable, canary, ctr, 5, CanaryConfig(), failed_before=1)
    assert verdict.decision == "rollback" and verdict.failed_checks == 2
    assert [c.name for c in verdict.checks if c.status == "failed"] == failed
    assert verdict.to_dict()["checks"][0]["name"] == "errors"
    assert canary_verdict(stable, canary, ctr, 5, CanaryConfig(failed_checks=1)
                          ).decision == "rollback"
    # a failed step is never promoted, even with its period over
    assert canary_verdict(stable, canary, ctr, 10_000, CanaryConfig(require_ctr=False,
                          max_ctr_drop=0.0)).decision == "wait"


def test_a_ctr_drop_rolls_back_at_once_and_is_never_followed_by_a_promotion():
    """The always-valid interval holds at every look: one look wholly below -max_ctr_drop
    rolls back below the failed-step threshold (in a closed-loop run a canary at -16.9%
    [-32.7%, -1.1%] waited, its next look's wider interval passed, and it was promoted)."""
    stable, canary = _windows(0.011)
    verdict = canary_verdict(stable, canary, BAD_CTR, 5, CanaryConfig(failed_checks=3))
    assert verdict.decision == "rollback" and verdict.failed_checks == 1
    assert [c.name for c in verdict.checks if c.status == "failed"] == ["ctr"]
    healthy = canary_verdict(stable, canary, GOOD_CTR, 900, CanaryConfig(min_duration_s=0))
    assert healthy.decision == "promote"


def test_a_slower_median_fails_even_when_the_tails_are_alike():
    """A loaded machine gives both labels the same slow tail; a candidate that does more
    work per request moves its median."""
    def window(label, typical_s):
        answers = [("full", typical_s)] * 380 + [("full", 0.9)] * 20  # 5%: the shared tail
        return label_windows(_scrape({label: answers}))[label]

    stable, slower, alike = window("stable", 0.012), window("canary", 0.030), \
        window("canary", 0.013)
    checks = {c.name: c for c in canary_verdict(stable, slower, GOOD_CTR, 5,
                                                CanaryConfig()).checks}
    assert checks["latency p50"].status == "failed"
    assert checks["latency p99"].status == "passed"
    assert "> 1.5 x stable's" in checks["latency p50"].detail
    checks = {c.name: c for c in canary_verdict(stable, alike, GOOD_CTR, 5,
                                                CanaryConfig()).checks}
    assert checks["latency p50"].status == "passed"


def test_a_slower_tail_alone_is_a_warning_unless_the_median_or_cpu_agree():
    """Two equal versions on a machine that trains while it serves: the canary's few
    hundred answers hold a heavier tail by chance. The p99 ratio alone warns and neither
    counts a failed step nor bars promotion; with a failed median or CPU check, or past
    the absolute limit, or with ``p99_ratio_alone_fails``, it fails."""
    def window(label, tail_s, typical_s=0.012, cpu_ms=2.0):
        answers = [("full", typical_s)] * 380 + [("full", tail_s)] * 20
        return label_windows(_scrape({label: answers}, cpu_ms=cpu_ms))[label]

    cfg = CanaryConfig(min_duration_s=0, failed_checks=1)
    stable, heavy_tail = window("stable", 0.2), window("canary", 1.5)
    verdict = canary_verdict(stable, heavy_tail, GOOD_CTR, 900, cfg)
    checks = {c.name: c for c in verdict.checks}
    assert checks["latency p99"].status == "warned", checks["latency p99"]
    assert "not counted: the median and CPU checks passed" in checks["latency p99"].detail
    assert checks["latency p50"].status == checks["cpu"].status == "passed"
    assert verdict.decision == "promote" and verdict.failed_checks == 0
    # the same tail counts when something else says the canary does more work
    for corroborated in (window("canary", 1.5, typical_s=0.030),  # its median
                         window("canary", 1.5, cpu_ms=6.0)):  # its CPU per answer
        verdict = canary_verdict(stable, corroborated, GOOD_CTR, 900, cfg)
        assert {c.name: c.status for c in verdict.checks}["latency p99"] == "failed"
        assert verdict.decision == "rollback"
    assert canary_verdict(stable, heavy_tail, GOOD_CTR, 900, CanaryConfig(
        min_duration_s=0, failed_checks=1, p99_ratio_alone_fails=True)).decision == "rollback"
    limited = canary_verdict(stable, heavy_tail, GOOD_CTR, 900, CanaryConfig(
        min_duration_s=0, failed_checks=1, max_latency_p99_ms=1000))
    assert {c.name: c.status for c in limited.checks}["latency p99"] == "failed"
    assert limited.decision == "rollback"


def test_a_candidate_that_costs_more_cpu_per_answer_fails_even_when_as_fast():
    """At a quarter of the traffic a lightly loaded machine absorbs a candidate that does
    three times the work per answer, and its latencies look like stable's."""
    stable = label_windows(_scrape({"stable": [("full", 0.026)] * 400}, cpu_ms=2.0))["stable"]
    costly = label_windows(_scrape({"canary": [("full", 0.026)] * 400}, cpu_ms=6.0))["canary"]
    alike = label_windows(_scrape({"canary": [("full", 0.026)] * 400}, cpu_ms=2.4))["canary"]
    first = canary_verdict(stable, costly, GOOD_CTR, 900, CanaryConfig(min_duration_s=0))
    failed = [c for c in first.checks if c.status == "failed"]
    assert [c.name for c in failed] == ["cpu"] and first.decision == "wait"
    assert failed[0].detail == "6.00 ms of CPU per answer > 1.5 x stable's 2.00 ms"
    assert canary_verdict(stable, costly, GOOD_CTR, 900, CanaryConfig(), failed_before=1
                          ).decision == "rollback"
    assert canary_verdict(stable, alike, GOOD_CTR, 900, CanaryConfig(min_duration_s=0)
                          ).decision == "promote"
    assert canary_verdict(stable, costly, GOOD_CTR, 900, CanaryConfig(
        min_duration_s=0, max_cpu_ratio=4)).decision == "promote"
    # a service that does not count CPU: the check is skipped, and no bar to promotion
    uncounted = label_windows(_scrape({"canary": [("full", 0.026)] * 400}, cpu_ms=0))
    verdict = canary_verdict(stable, uncounted["canary"], GOOD_CTR, 900,
                             CanaryConfig(min_duration_s=0))
    assert {c.name: c.status for c in verdict.checks}["cpu"] == "skipped"
    assert verdict.decision == "promote"


def test_errors_and_latency_are_judged_on_the_step_unless_it_is_too_small():
    cfg = CanaryConfig(min_duration_s=0, min_requests=100, require_ctr=False)
    stable, slow = _windows(0.2)  # the whole canary: slow earlier on
    step_stable, step_fast = _windows(0.011, n=200)
    verdict = canary_verdict(stable, slow, None, 900, cfg, step=(step_stable, step_fast))
    assert verdict.decision == "promote", verdict
    tiny_stable, tiny_fast = _windows(0.011, n=20)  # < min_step_requests: the whole canary
    verdict = canary_verdict(stable, slow, None, 900, cfg, step=(tiny_stable, tiny_fast))
    assert verdict.decision == "wait" and verdict.failed_checks == 1


def _error_windows(rng, n_stable, p_stable, n_canary, p_canary):
    def window(n, p):
        bad = rng.binomial(n, p)
        return LabelWindow({"full": float(n - bad), "global-popular": float(bad)},
                           {0.01: float(n), math.inf: float(n)})
    return window(n_stable, p_stable), window(n_canary, p_canary)


@pytest.mark.parametrize("p_canary, at_most, at_least", [
    (0.08, 0.0, 0.0),  # as stable: practically never
    (0.10, 0.02, 0.0),  # exactly stable's + max_error_increase: at most error_alpha
    (0.25, 1.0, 0.99),  # broken: nearly always
])
def test_the_errors_guardrail_fails_at_its_alpha_over_seeded_steps(p_canary, at_most,
                                                                   at_least):
    """2,000 seeded steps of 300 stable and 300 canary answers, stable at 8% fallbacks."""
    cfg = CanaryConfig(max_error_increase=0.02, error_alpha=0.01)
    rng = np.random.default_rng(23)
    failed = np.mean([error_check(*_error_windows(rng, 300, 0.08, 300, p_canary), cfg).status
                      == "failed" for _ in range(2000)])
    assert at_least <= failed <= max(at_most, at_least)


def test_the_loaded_machine_case_passes_and_the_broken_candidate_fails():
    """The figures of two earlier runs: 11.8% vs 7.8% fallbacks on a loaded machine (a
    good candidate) must pass; 20% vs 3.3% (a slow candidate) must fail."""
    cfg = CanaryConfig()
    loaded = (LabelWindow({"full": 277.0, "global-popular": 23.0}),
              LabelWindow({"full": 265.0, "global-popular": 35.0}))
    assert error_check(*loaded, cfg).status == "passed"
    broken = (LabelWindow({"full": 290.0, "global-popular": 10.0}),
              LabelWindow({"full": 240.0, "global-popular": 60.0}))
    assert error_check(*broken, cfg).status == "failed"


def test_an_absolute_latency_limit_holds_even_when_stable_is_as_slow():
    stable, canary = _windows(0.2)
    slow_stable = label_windows(_scrape({"stable": [("full", 0.2)] * 400}))["stable"]
    assert canary_verdict(slow_stable, canary, GOOD_CTR, 900, CanaryConfig(
        max_latency_p99_ms=100, failed_checks=1)).decision == "rollback"
    assert canary_verdict(slow_stable, canary, GOOD_CTR, 900, CanaryConfig()
                          ).decision == "promote"


def test_bad_canary_settings_are_refused_naming_the_field():
    from recsys.config import config_section

    for raw, field in (({"share": 1.5}, "share"), ({"min_requests": 0}, "min_requests"),
                       ({"max_latency_ratio": -1}, "max_latency_ratio"),
                       ({"max_median_latency_ratio": 0}, "max_median_latency_ratio"),
                       ({"max_cpu_ratio": 0}, "max_cpu_ratio"),
                       ({"p99_ratio_alone_fails": "maybe"}, "p99_ratio_alone_fails"),
                       ({"sahre": 0.1}, "sahre"), ({"failed_checks": 0}, "failed_checks"),
                       ({"error_alpha": 1.5}, "error_alpha"),
                       ({"min_step_requests": -1}, "min_step_requests")):
        with pytest.raises(ConfigError, match=field):
            config_section(CanaryConfig, raw, "canary")


def _aa_requests(rng: np.random.Generator, users: int, ctr: float) -> pd.DataFrame:
    exposures = rng.poisson(20, users) + 1
    taste = rng.beta(2, 2 / ctr - 2, users)  # users differ; mean ctr
    clicks = rng.binomial(exposures, taste)
    return pd.DataFrame({"user_id": np.arange(users), "exposures": exposures,
                         "clicks": clicks})


def test_the_ctr_guardrail_rolls_back_an_aa_canary_at_most_alpha_of_the_time_over_looks():
    """200 seeded A/A canaries, each looked at 8 times as its users arrive: the share ever
    rolled back stays near alpha with the always-valid interval; the fixed-horizon interval
    at the same looks rolls back several times as often (why the canary uses the former)."""
    cfg = CanaryConfig(alpha=0.05, failed_checks=1)
    healthy = _windows(0.01)
    runs, looks, ever_sequential, ever_fixed = 200, 8, 0, 0
    for seed in range(runs):
        rng = np.random.default_rng([17, seed])
        stable = _aa_requests(rng, 1600, 0.08).assign(retrieval_version=1)
        canary = _aa_requests(rng, 1600, 0.08).assign(retrieval_version=2)
        canary["user_id"] += 10**6
        rolled_sequential = rolled_fixed = False
        for look in range(1, looks + 1):
            n = 200 * look
            both = pd.concat([stable[:n], canary[:n]])
            for tau, hit in ((0.1, "sequential"), (None, "fixed")):
                found = compare_versions(both, 1, 2, cfg.alpha, sequential_tau=tau).to_dict()
                rolled = canary_verdict(*healthy, found, 0, cfg).decision == "rollback"
                if hit == "sequential":
                    rolled_sequential |= rolled
                else:
                    rolled_fixed |= rolled
        ever_sequential += rolled_sequential
        ever_fixed += rolled_fixed
    # one-sided: a rollback needs the interval wholly below 0 (alpha/2 per look at most)
    assert ever_sequential / runs <= 0.05
    assert ever_fixed > ever_sequential
