"""`recsys ope` on a lake: decisions and events written through the lake's checks, joined by
Beam into the same estimates as the in-process estimators on the same answers; events
outside the attribution window and impressions earn nothing; deterministic answers are
counted, not used; bad flags are refused by name."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest

from recsys.data.lake import Lake
from recsys.errors import ConfigError
from recsys.exploration import Policy, parse_policy
from recsys.exploration.features import bandit_features
from recsys.exploration.ope import LoggedAnswer, evaluate
from workflows.cli.main import main

LOGGING = "softmax:temperature=1,max_explored_share=1,pool=6"
TARGET = "softmax:temperature=0.5,max_explored_share=1,pool=6"
K, ITEMS, ANSWERS = 3, 6, 300


def _write_logs(lake: Lake, rng: np.random.Generator) -> list[LoggedAnswer]:
    """Decisions of a softmax logging policy, clicks with known probabilities, some noise
    the job must ignore; returns the answers as the job should see them."""
    policy = Policy(parse_policy(LOGGING))
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)
    decisions, events, exposures, answers = [], [], [], []
    appeal = rng.random(40) * 0.5
    for n in range(ANSWERS):
        when = start + dt.timedelta(seconds=10 * n)
        items = rng.choice(40, size=ITEMS, replace=False)
        scores = np.sort(rng.normal(size=ITEMS))[::-1]
        order = policy.choose(scores, K, rng)
        slate = policy.slate(scores, K, order)
        categories = [f"c{i % 4}" for i in items]
        ages = [float(3600 * i) for i in items]
        request, user = f"r{n}", f"u{n % 37}"
        decisions.append({
            "request_id": request, "timestamp": when.isoformat(), "user_id": user,
            "policy": policy.spec.canonical(), "seed": n, "k": K, "experiments": [],
            "list_item_ids": [f"i{i}" for i in items], "list_scores": scores.tolist(),
            "list_categories": categories, "list_ages_s": ages,
            "list_sources": ["two-tower"] * ITEMS, "recent_categories": ["c1"],
            "ranks": order.tolist(), "propensities": slate.propensity.tolist(),
            "cascade_propensities": slate.cascade.tolist(), "bandit_updates": None})
        rewards = np.zeros(K)
        for position, rank in enumerate(order):
            item = f"i{items[rank]}"
            common = {"user_id": user, "item_id": item, "request_id": request,
                      "position": position}
            events.append({**common, "event_id": f"{request}-{position}-imp",
                           "event_type": "impression",
                           "timestamp": (when + dt.timedelta(seconds=1)).isoformat()})
            if rng.random() < appeal[items[rank]]:
                rewards[position] += 1
                events.append({**common, "event_id": f"{request}-{position}-click",
                               "event_type": "click",
                               "timestamp": (when + dt.timedelta(seconds=5)).isoformat()})
            if n % 10 == 0:  # a late click: outside the 30-minute window
                events.append({**common, "event_id": f"{request}-{position}-late",
                               "event_type": "click",
                               "timestamp": (when + dt.timedelta(hours=1)).isoformat()})
        features = bandit_features(scores, categories, ages, ["two-tower"] * ITEMS, {"c1"})
        answers.append(LoggedAnswer(request, user, scores, order, slate.propensity,
                                    slate.cascade, rewards, features))
    for n in range(7):  # answers of a deterministic policy: exposures, no decision
        exposures.append({"exposure_id": f"d{n}/0", "request_id": f"d{n}",
                          "timestamp": start.isoformat(), "user_id": "u1", "item_id": "i1",
                          "position": 0, "propensity": 1.0, "tier": "full", "holdout": 0})
    lake.write_decisions(decisions, "test")
    lake.write_events(events, "test")
    lake.write_exposures(exposures, "test")
    return answers


def test_ope_on_the_lake_equals_the_estimators_on_the_same_answers(tmp_path, capsys):
    lake = Lake(tmp_path / "lake", create=True)
    answers = _write_logs(lake, np.random.default_rng(0))
    out = tmp_path / "ope.json"
    assert main(["ope", "--lake", str(lake.root), "--policy", TARGET, "--slots", str(K),
                 "--replicates", "50", "--seed", "3", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mean importance weight" in printed and "skipped 7: deterministic answers" in printed
    document = json.loads(out.read_text())
    assert document["answers"] == ANSWERS
    expected, _ = evaluate(answers, Policy(parse_policy(TARGET)), K, replicates=50, seed=3)
    for name, value in expected.items():
        got = document["estimates"][name]
        for key in ("estimate", "low", "high"):
            assert math.isclose(got[key], value[key], rel_tol=1e-6, abs_tol=1e-9), (name, key)
    assert document["skipped"] == {"deterministic answers (no decision logged: no support "
                                   "for other policies)": 7}
    # the logging policy's own value: the clicks within the window
    assert document["estimates"]["logged"]["estimate"] == pytest.approx(
        np.mean([a.rewards.sum() for a in answers]))


@pytest.mark.parametrize("flags, message", [
    (["--policy", "softmax:temprature=1"], r"--policy\.temprature: unknown field"),
    (["--policy", "linucb:alpha=1"], "--policy linucb needs --bandit_state FILE"),
    (["--policy", "softmax", "--reward", "click"], r"--reward: 'click' is not type=weight"),
    (["--policy", "softmax", "--reward", "clicks=1"], "unknown key"),
    (["--policy", "softmax", "--clip", "0"], "--clip must be > 0"),
    (["--policy", "uniform:other_categories=3"], "--policy other_categories: a target that "
                                                 "draws items from outside the logged list"),
])
def test_bad_flags_are_refused_by_name(tmp_path, flags, message):
    from beam_jobs.ope import run

    lake = Lake(tmp_path / "lake", create=True)
    with pytest.raises(ConfigError, match=message):
        run(["--lake", str(lake.root), "--output", str(tmp_path / "o.json"), *flags])


def test_the_ope_job_and_the_outcome_join_share_their_window_options():
    """Beam parses every registered options class together: one definition each."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from beam_jobs.ope import OPEJobOptions
    from beam_jobs.options import AnswerWindowOptions
    from beam_jobs.outcomes import OutcomeJobOptions

    options = PipelineOptions(["--policy", "none", "--attribution_window_s", "60",
                               "--start", "2026-12-01T00:00:00Z"])
    assert options.view_as(OPEJobOptions).policy == "none"
    assert options.view_as(OutcomeJobOptions).attribution_window_s == 60.0
    assert options.view_as(AnswerWindowOptions).start == "2026-12-01T00:00:00Z"
