"""The drift windows count each user once (recsys/monitoring/serving_windows.py
``one_per_user``): over seeded windows of queries drawn with no drift at all, from users who
ask a few times a day with a fixed profile, the real drift tests keep their false-positive
rate at their threshold on one sample per user (below it: the window and the reference share
many users), and exceed it on every sampled query (the false alarm of a closed-loop control
run: country, p 0.0029 then 0.0049, two windows in a row, with no shift)."""

import numpy as np

from recsys.monitoring.profile import drift_report
from recsys.monitoring.serving_windows import one_per_user
from workflows.controller.drift_watch import as_columns, serving_reference

USERS, THRESHOLD = 2_000, 0.05  # the p-value tests' default threshold


def _window(rng, country, age, sessions=2.0, sample_rate=0.25, active=0.7) -> list[dict]:
    """One day of the serving profile's samples: each active user asks 1 + Poisson(sessions)
    times, each answer sampled at ``sample_rate``, in a random order."""
    users = np.flatnonzero(rng.random(USERS) < active)
    sampled = rng.binomial(1 + rng.poisson(sessions, len(users)), sample_rate)
    asked = rng.permutation(np.repeat(users, sampled))
    return [{"unit": f"{u:x}", "at_s": 0.0,
             "inputs": {"country": country[u], "user_age_bucket": age[u]}} for u in asked]


def test_one_per_user_keeps_the_first_sample_of_each_user_and_every_sample_without_one():
    samples = [{"unit": "a", "n": 0}, {"n": 1}, {"unit": "a", "n": 2}, {"unit": "b", "n": 3},
               {"n": 4}]
    assert [s["n"] for s in one_per_user(samples)] == [0, 1, 3, 4]


def test_drift_tests_on_one_sample_per_user_keep_their_false_positive_rate():
    rng = np.random.default_rng(3)
    shares = np.r_[np.full(5, 0.12), np.full(15, 0.4 / 15)]
    country = [f"c{c}" for c in rng.choice(20, USERS, p=shares)]
    age = [f"a{a}" for a in rng.integers(0, 7, USERS)]
    alarms = {"per user": 0, "per query": 0}
    tests = 0
    for _ in range(100):
        reference = _window(rng, country, age)
        for name, keep in (("per user", one_per_user), ("per query", list)):
            profile = serving_reference(keep(reference)[:800])
            for _ in range(5):
                results = drift_report(profile, as_columns(keep(_window(rng, country, age))))
                alarms[name] += sum(r.statistic < THRESHOLD for r in results
                                    if r.feature in ("country", "user_age_bucket"))
        tests += 5 * 2
    rate = {name: count / tests for name, count in alarms.items()}
    bound = THRESHOLD + 3 * np.sqrt(THRESHOLD * (1 - THRESHOLD) / tests)
    assert rate["per user"] <= bound, rate
    assert rate["per query"] > bound, rate  # what the windows did before
