"""Off-policy evaluation: the estimators against values computed by hand on a small log,
answers without propensities skipped and counted, the Beam pipeline equal to the in-process
run, and (seeded simulation on the synthetic platform) estimates near the true value with
intervals that cover it."""

from __future__ import annotations

import math

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that

from beam_jobs.ope import EstimatePolicyValue
from recsys.exploration import Policy, parse_policy
from recsys.exploration.ope import (
    BootstrapSums,
    LoggedAnswer,
    RewardModel,
    answer_statistics,
    estimates,
    evaluate,
)
from workflows.ope_simulation import run_ope_check

UNIFORM = Policy(parse_policy("uniform:max_explored_share=1,pool=3"))
GREEDY = Policy(parse_policy("none"))
SCORES = np.array([3.0, 2.0, 1.0])


def _answer(request: str, user: str, order, rewards, logger=UNIFORM, features=None):
    order = np.array(order)
    slate = logger.slate(SCORES, 2, order)
    return LoggedAnswer(request, user, SCORES, order, slate.propensity, slate.cascade,
                        np.array(rewards, dtype=float), features)


def test_estimators_match_hand_computed_values():
    # uniform over 3 items, 2 slots: every item 1/3 in each slot; a prefix of two 1/6.
    # The target (the ranked list as it is) shows item 0 then item 1.
    a = _answer("a", "u1", [0, 1], [1, 0])
    b = _answer("b", "u2", [2, 1], [0, 1])
    assert a.propensity.tolist() == pytest.approx([1 / 3, 1 / 3])
    assert a.cascade.tolist() == pytest.approx([1 / 3, 1 / 6])
    sums = answer_statistics(a, GREEDY, 2) + answer_statistics(b, GREEDY, 2)
    values = estimates(sums, 2)
    # ips: a: 3*1 + 3*0, b: 0*0 + 3*1 -> 3; snips: slot 0 3/3, slot 1 3/6 -> 1.5
    # rips: a: prefix ratios 3 and 6 -> 3, b: 0 -> 1.5; snrips: slot 0 3/3, slot 1 0/6 -> 1
    # slate_ips: a: 6*(1+0), b: 0 -> 3; logged 1; mean weight (3+3+0+3)/4
    assert values["ips"] == pytest.approx(3.0)
    assert values["snips"] == pytest.approx(1.5)
    assert values["rips"] == pytest.approx(1.5)
    assert values["snrips"] == pytest.approx(1.0)
    assert values["slate_ips"] == pytest.approx(3.0)
    assert values["logged"] == pytest.approx(1.0)
    assert values["mean_weight"] == pytest.approx(2.25)
    # doubly robust with a model predicting 0.5 in slot 0 and 0.2 in slot 1 for any item:
    # a: 0.5 + 3(1 - 0.5) + 0.2 + 3(0 - 0.2) = 1.6; b: 0.5 + 0 + 0.2 + 3(1 - 0.2) = 3.1
    model = RewardModel(np.array([0.0, 0.5, 0.2]), 2)
    features = np.ones((3, 1))
    a_f = _answer("a", "u1", [0, 1], [1, 0], features=features)
    b_f = _answer("b", "u2", [2, 1], [0, 1], features=features)
    sums = (answer_statistics(a_f, GREEDY, 2, model=model)
            + answer_statistics(b_f, GREEDY, 2, model=model))
    assert estimates(sums, 2)["dr"] == pytest.approx((1.6 + 3.1) / 2)
    # clipping at 2 cuts every weight of 3 or 6 to 2
    sums = answer_statistics(a, GREEDY, 2, clip=2.0) + answer_statistics(b, GREEDY, 2, clip=2.0)
    assert estimates(sums, 2)["ips"] == pytest.approx((2 + 2) / 2)


def test_answers_without_propensities_are_skipped_and_counted():
    good = _answer("a", "u1", [0, 1], [1, 0])
    missing = LoggedAnswer("b", "u2", SCORES, np.array([0, 1]), np.array([np.nan, 0.5]),
                           np.array([0.5, 0.25]), np.array([1.0, 0.0]))
    deterministic_zero = LoggedAnswer("c", "u3", SCORES, np.array([0, 1]),
                                      np.array([0.0, 1.0]), np.array([0.0, 0.0]),
                                      np.array([1.0, 0.0]))
    result, skipped = evaluate([good, missing, deterministic_zero], GREEDY, 2, replicates=20)
    assert skipped == {"logged propensity missing": 1, "logged propensity outside (0, 1]": 1}
    assert result["ips"]["estimate"] == pytest.approx(3.0)  # the good answer alone


def test_bootstrap_sums_merge_in_any_order():
    rng = np.random.default_rng(0)
    answers = [_answer(f"r{i}", f"u{i % 7}", rng.permutation(3)[:2], rng.random(2) < 0.4)
               for i in range(40)]
    whole = BootstrapSums(2, replicates=30, seed=3)
    halves = [BootstrapSums(2, replicates=30, seed=3) for _ in range(2)]
    for i, answer in enumerate(answers):
        statistics = answer_statistics(answer, GREEDY, 2)
        whole.add(answer.user_id, statistics)
        halves[i % 2].add(answer.user_id, statistics)
    merged = halves[1].merge(halves[0])
    assert np.allclose(merged.sums, whole.sums) and np.allclose(merged.counts, whole.counts)
    a, b = merged.result(), whole.result()
    for name in a:
        for key in a[name]:
            assert math.isclose(a[name][key], b[name][key], rel_tol=1e-12), (name, key)


def test_beam_pipeline_equals_the_in_process_estimate():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(3, 4))
    answers = [_answer(f"r{i}", f"u{i % 11}", rng.permutation(3)[:2], rng.random(2) < 0.4,
                       features=features) for i in range(60)]
    answers.append(LoggedAnswer("bad", "u0", SCORES, np.array([0, 1]), np.array([np.nan, 1.0]),
                                np.array([1.0, 1.0]), np.array([0.0, 0.0]), features))
    target = Policy(parse_policy("softmax:temperature=0.5,max_explored_share=1,pool=3"))
    expected, skipped = evaluate(answers, target, 2, replicates=25, seed=4)

    def check(results):
        (result,) = results
        assert result["skipped"] == dict(skipped) == {"logged propensity missing": 1}
        for name, value in expected.items():
            got = result["estimates"][name]
            for key in ("estimate", "low", "high"):
                assert math.isclose(got[key], value[key], rel_tol=1e-9, abs_tol=1e-12), name

    with beam.Pipeline("DirectRunner") as pipeline:
        result = (pipeline | beam.Create(answers)
                  | EstimatePolicyValue(target, 2, replicates=25, seed=4))
        assert_that(result, check)


def test_estimates_cover_the_simulated_truth():
    """Seeded simulation, a small version of benchmarks/ope_simulation.py: a softmax
    logging policy, two target policies; DR and SNIPS within 10% of the exact expected
    clicks of each target, and their 95% intervals cover it in most runs."""
    rows = run_ope_check(["softmax:temperature=1,max_explored_share=1,pool=10"],
                         ["softmax:temperature=0.4,max_explored_share=1,pool=10",
                          "epsilon-greedy:epsilon=0.3,max_explored_share=0.5,pool=10"],
                         runs=6, answers=1_500, k=5, truth_contexts=2_000, replicates=100,
                         list_size=10, estimators=("snips", "dr"), seed=5)
    assert len(rows) == 4
    for row in rows:
        assert abs(row["relative_error_of_mean"]) < 0.10, row
        assert row["coverage"] >= 4 / 6, row
        assert 0.9 < row["mean_weight"] < 1.1, row
