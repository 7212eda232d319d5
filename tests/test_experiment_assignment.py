"""Experiment assignment: golden vectors (computed by an independent implementation, from
openssl's SHA-256), stickiness, arm shares over 100K users, exclusive layers, independent
layers, exact targeting, the global holdout and the experiments' time windows."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest

from recsys.errors import ConfigError
from recsys.experiments import Assigner, load_experiments, parse_experiments, unit_interval

DATA = Path(__file__).parent / "data"
GOLDEN = json.loads((DATA / "experiment_assignment_golden.json").read_text())
USERS = [f"user-{i}" for i in range(100_000)]


def two_arms(weights=(1, 1), **extra) -> dict:
    return {"name": "exp", "arms": [{"name": f"arm{i}", "weight": w}
                                    for i, w in enumerate(weights)], **extra}


def test_the_hash_matches_the_golden_vectors():
    for case in GOLDEN["hashes"]:
        got = unit_interval(case["salt"], case["user_id"], case["hash_version"])
        assert got == case["unit"] and got * 2 ** 53 == case["top53"], case


def test_assignments_match_the_golden_vectors():
    assigner = Assigner(load_experiments(DATA / "experiments_golden.yaml"))
    for case in GOLDEN["assignments"]:
        got = assigner.assign(case["user_id"], case["context"], GOLDEN["now_s"],
                              case["returning"])
        assert (got.arms, got.holdout) == (case["arms"], case["holdout"]), case


def test_an_unknown_hash_version_is_refused():
    with pytest.raises(ConfigError, match=r"hash_version must be one of \['v1'\], got 'v2'"):
        unit_interval("s", "u", "v2")


def test_assignment_is_sticky_across_assigners_and_calls():
    definitions = load_experiments(DATA / "experiments_golden.yaml")
    first, second = Assigner(definitions), Assigner(definitions)
    context = {"country": "US"}
    for user in USERS[:2000]:
        a = first.assign(user, context, GOLDEN["now_s"], True)
        assert a == first.assign(user, context, GOLDEN["now_s"], True)
        assert a == second.assign(user, context, GOLDEN["now_s"], True)


@pytest.mark.parametrize("weights", [(1, 1), (70, 20, 10), (1, 3)])
def test_arm_shares_are_within_one_percent_of_their_weights(weights):
    assigner = Assigner(parse_experiments({"experiments": [two_arms(weights)]}))
    counts = Counter(assigner.assign(u, {}, 0).arms["exp"] for u in USERS)
    for i, weight in enumerate(weights):
        assert abs(counts[f"arm{i}"] / len(USERS) - weight / sum(weights)) < 0.01


def test_experiments_of_one_layer_never_share_a_user_and_take_their_traffic():
    assigner = Assigner(parse_experiments({"experiments": [
        two_arms(name="a", layer="l", traffic=0.3), two_arms(name="b", layer="l", traffic=0.3),
        two_arms(name="c", layer="l", traffic=0.4)]}))
    seen = Counter(tuple(sorted(assigner.assign(u, {}, 0).arms)) for u in USERS)
    assert set(seen) == {("a",), ("b",), ("c",)}  # exactly one each: exclusive, covering
    for name, share in (("a", 0.3), ("b", 0.3), ("c", 0.4)):
        assert abs(seen[(name,)] / len(USERS) - share) < 0.01


def test_layers_are_independent_and_editing_one_moves_no_user_of_another():
    base = [two_arms(name="a", layer="one", traffic=0.5),
            two_arms(name="b", layer="two", traffic=0.5)]
    assigner = Assigner(parse_experiments({"experiments": base}))
    both = sum(len(assigner.assign(u, {}, 0).arms) == 2 for u in USERS)
    assert abs(both / len(USERS) - 0.25) < 0.01
    edited = [dict(base[0], traffic=0.2, arms=[{"name": "x"}, {"name": "y"}, {"name": "z"}]),
              base[1]]
    after = Assigner(parse_experiments({"experiments": edited}))
    for user in USERS[:20_000]:
        assert after.assign(user, {}, 0).arms.get("b") == assigner.assign(user, {}, 0).arms.get(
            "b")


@pytest.mark.parametrize("targeting, context, returning, taken", [
    ({"countries": ["US"]}, {"country": "US"}, None, True),
    ({"countries": ["US"]}, {"country": "us"}, None, False),  # exact, case included
    ({"countries": ["US"]}, {}, None, False),
    ({"devices": ["tv", "mobile"], "languages": ["en"]}, {"device": "tv", "language": "en"},
     None, True),
    ({"devices": ["tv", "mobile"], "languages": ["en"]}, {"device": "tv", "language": "de"},
     None, False),
    ({"users": "new"}, {}, False, True),
    ({"users": "new"}, {}, True, False),
    ({"users": "new"}, {}, None, False),  # unknown kind: only "all" takes it
    ({"users": "returning"}, {}, True, True),
    ({"users": "returning"}, {}, False, False),
    ({}, {}, None, True),
])
def test_targeting_is_exact(targeting, context, returning, taken):
    assigner = Assigner(parse_experiments({"experiments": [two_arms(targeting=targeting)]}))
    got = [("exp" in assigner.assign(u, context, 0, returning).arms) for u in USERS[:200]]
    assert set(got) == {taken}


def test_the_global_holdout_sees_no_experiment():
    assigner = Assigner(parse_experiments({
        "holdout": {"share": 0.1, "salt": "h"},
        "experiments": [two_arms(name="a", layer="one"), two_arms(name="b", layer="two")]}))
    results = [assigner.assign(u, {}, 0) for u in USERS]
    held = [r for r in results if r.holdout]
    assert abs(len(held) / len(USERS) - 0.1) < 0.01
    assert all(r.arms == {} and r.changes == () for r in held)
    assert all(set(r.arms) == {"a", "b"} for r in results if not r.holdout)


def test_only_running_experiments_assign():
    assigner = Assigner(parse_experiments({"experiments": [two_arms(
        start="2026-12-01T00:00:00Z", stop="2026-12-15T00:00:00+00:00")]}))
    start, stop = 1_796_083_200, 1_797_292_800  # 2026-12-01 and 2026-12-15, UTC
    assert "exp" not in assigner.assign("u1", {}, start - 1).arms
    assert "exp" in assigner.assign("u1", {}, start).arms
    assert "exp" in assigner.assign("u1", {}, stop - 1).arms
    assert "exp" not in assigner.assign("u1", {}, stop).arms


def test_the_changes_are_the_assigned_arms():
    assigner = Assigner(parse_experiments({"experiments": [{
        "name": "exp", "arms": [{"name": "control"},
                                {"name": "canary", "changes": {"model_label": "canary"}}]}]}))
    for user in USERS[:500]:
        got = assigner.assign(user, {}, 0)
        label = got.changes[0].model_label
        assert label == ("canary" if got.arms["exp"] == "canary" else "")
        assert dataclasses.is_dataclass(got.changes[0])


def test_forced_arms_override_the_hash_their_layer_and_the_holdout_and_are_checked():
    assigner = Assigner(parse_experiments({
        "holdout": {"share": 0.5},
        "experiments": [{**two_arms(), "layer": "l", "traffic": 0.5},
                        {**two_arms(), "name": "exp2", "layer": "l", "traffic": 0.5,
                         "traffic_offset": 0.5},
                        {**two_arms(), "name": "other", "layer": "m"}]}))
    for user in USERS[:200]:
        hashed = assigner.assign(user, {}, 0.0, None)
        got = assigner.assign(user, {}, 0.0, None, forced={"exp": "arm1"})
        assert got.arms["exp"] == "arm1" and "exp2" not in got.arms and not got.holdout
        # other layers as hashed (none for a user of the holdout)
        assert got.arms.get("other") == hashed.arms.get("other")
    with pytest.raises(ValueError, match="no experiment 'nope'"):
        assigner.check_forced({"nope": "arm0"})
    with pytest.raises(ValueError, match=r"experiment 'exp' has no arm 'arm9' \(arms: "):
        assigner.check_forced({"exp": "arm9"})
