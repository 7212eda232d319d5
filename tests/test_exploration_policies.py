"""Exploration policies: the propensities they log are the frequencies they show (sampled many
times), Plackett-Luce's quadrature against exact enumeration, seeded replay, the cap on
explored slots, and specs refused by field."""

from __future__ import annotations

import itertools
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

from recsys.errors import ConfigError
from recsys.exploration import LinUCBState, Policy, parse_policy, plackett_luce
from recsys.exploration.features import DIMENSION, bandit_features, new_items

K, N_ITEMS, DRAWS = 5, 9, 20_000


def _enumerated(weights: np.ndarray, n: int) -> np.ndarray:
    """P(item at position) by summing over every ordered choice, in exact fractions."""
    w = [Fraction(float(x)) for x in weights]
    out = [[Fraction(0)] * len(w) for _ in range(n)]
    for perm in itertools.permutations(range(len(w)), n):
        p, left = Fraction(1), sum(w)
        for i in perm:
            p *= w[i] / left
            left -= w[i]
        for j, i in enumerate(perm):
            out[j][i] += p
    return np.array([[float(x) for x in row] for row in out])


@pytest.mark.parametrize("method, tolerance", [("prefixes", 1e-12), ("quadrature", 1e-8)])
@pytest.mark.parametrize("spread", [0.1, 1.0, 5.0, 40.0])
def test_plackett_luce_marginals_match_enumeration(spread, method, tolerance, monkeypatch):
    if method == "quadrature":  # the path of many positions, forced on a small list
        monkeypatch.setattr(plackett_luce, "PREFIX_BUDGET", 0)
    rng = np.random.default_rng(int(spread * 10))
    weights = plackett_luce.relative_weights(rng.normal(size=6) * spread)
    exact = _enumerated(weights, 4)
    assert np.abs(plackett_luce.marginals(weights, 4) - exact).max() < tolerance
    some = np.array([4, 0, 2])  # asking for a few items gives the same columns
    assert np.abs(plackett_luce.marginals(weights, 4, some) - exact[:, some]).max() < tolerance


def test_plackett_luce_zero_weight_items_never_appear():
    weights = np.array([1.0, 0.0, 2.0, 0.5])
    m = plackett_luce.marginals(weights, 3)
    assert np.all(m[:, 1] == 0) and np.allclose(m.sum(axis=1), 1.0)
    rng = np.random.default_rng(0)
    assert all(1 not in plackett_luce.sample(weights, 3, rng) for _ in range(200))
    with pytest.raises(ValueError, match="cannot fill 4 positions from 3"):
        plackett_luce.marginals(weights, 4)


SPECS = [
    "none",
    "epsilon-greedy:epsilon=0.3,max_explored_share=0.4,pool=9",
    "epsilon-greedy:epsilon=0.5,max_explored_share=1.0,pool=7",
    "softmax:temperature=0.7,max_explored_share=0.6,pool=9",
    "softmax:temperature=2.0,max_explored_share=1.0,pool=8",
    "uniform:max_explored_share=1.0,pool=9",
    "linucb:alpha=0.5,temperature=0.5,max_explored_share=0.4,pool=9",
    "softmax:temperature=0.7,max_explored_share=0.6,pool=9,new_item_bonus=1.5",
    "linucb:alpha=0.5,temperature=0.5,max_explored_share=0.6,pool=9,new_item_bonus=2",
    # the list's last items are other categories' (drawn, not ranked): the pool goes past
    # ``pool`` by ``other_categories``, and only to them with ``pool=1``
    "epsilon-greedy:epsilon=0.4,max_explored_share=0.6,pool=6,other_categories=2",
    "uniform:max_explored_share=0.6,pool=1,other_categories=3",
]
NEW_ITEMS = (3, 5, 7)  # in ``_list``: created an hour ago (3, 5) or from the fresh index (7)


def _bandit(rng: np.random.Generator):
    state = LinUCBState(DIMENSION, ridge=1.0)
    x = rng.normal(size=(40, DIMENSION))
    state.show(x)
    state.reward(x, rng.random(40) < 0.3)
    return state.snapshot()


def _list(rng: np.random.Generator):
    scores = np.sort(rng.normal(size=N_ITEMS))[::-1]
    ages = [3600.0 if i in NEW_ITEMS[:2] else 86_400.0 * (i + 2) for i in range(N_ITEMS)]
    sources = ["fresh" if i == NEW_ITEMS[2] else "two-tower" for i in range(N_ITEMS)]
    features = bandit_features(scores, [f"c{i % 3}" for i in range(N_ITEMS)], ages, sources,
                               {"c1"})
    return scores, features


@pytest.mark.parametrize("text", SPECS)
def test_logged_propensities_are_the_observed_frequencies(text):
    rng = np.random.default_rng(7)
    scores, features = _list(rng)
    spec = parse_policy(text)
    policy = Policy(spec, bandit=_bandit(rng) if spec.policy == "linucb" else None)
    marginals = policy.marginals(scores, K, features)
    assert marginals.shape == (K, N_ITEMS)
    assert np.allclose(marginals.sum(axis=1), 1.0)  # every slot shows exactly one item
    assert np.all(marginals.sum(axis=0) <= 1.0 + 1e-9)  # an item at most once
    seen = np.zeros((K, N_ITEMS))
    slates: Counter = Counter()
    draws = np.random.default_rng(11)
    first_slate = None
    for _ in range(DRAWS):
        order = policy.choose(scores, K, draws, features)
        assert len(set(order.tolist())) == K
        seen[np.arange(K), order] += 1
        slates[tuple(order)] += 1
        first_slate = first_slate if first_slate is not None else order
    frequency = seen / DRAWS
    tolerance = 4.5 * np.sqrt(marginals * (1 - marginals) / DRAWS) + 1e-9
    assert np.all(np.abs(frequency - marginals) <= tolerance), (frequency - marginals)
    # the logged propensities of a drawn answer are the marginals at its slots, and the
    # cascade of its first slots is how often answers start so (every prefix common enough
    # to count: the exact answers of a uniform policy are too many to see each often)
    slate = policy.slate(scores, K, first_slate, features)
    assert np.allclose(slate.propensity, marginals[np.arange(K), first_slate])
    prefixes: Counter = Counter()
    cascades = {}
    for order, times in slates.items():
        cascade = np.cumprod(policy.step_probabilities(scores, K, np.array(order), features))
        for length in range(1, K + 1):
            prefixes[order[:length]] += times
            cascades[order[:length]] = cascade[length - 1]
    checked = 0
    for prefix, times in prefixes.items():
        p = cascades[prefix]
        if p * DRAWS >= 30:
            checked += 1
            assert abs(times / DRAWS - p) <= 4.5 * np.sqrt(p * (1 - p) / DRAWS) + 1e-9
    assert checked >= K
    assert np.all(np.diff(slate.cascade) <= 1e-12) and slate.cascade[0] > 0


@pytest.mark.parametrize("text", SPECS[1:])
def test_explored_slots_stay_under_the_cap_and_a_seed_replays(text):
    rng = np.random.default_rng(3)
    scores, features = _list(rng)
    spec = parse_policy(text)
    policy = Policy(spec, bandit=_bandit(rng) if spec.policy == "linucb" else None)
    for seed in range(300):
        order = policy.choose(scores, K, np.random.default_rng(seed), features)
        again = policy.choose(scores, K, np.random.default_rng(seed), features)
        assert np.array_equal(order, again)
        assert int((order != np.arange(K)).sum()) <= spec.explorable_slots(K)


def test_a_new_item_bonus_moves_the_explored_slots_to_new_items():
    rng = np.random.default_rng(5)
    scores, features = _list(rng)
    assert np.flatnonzero(new_items(features)).tolist() == list(NEW_ITEMS)
    shares = []
    for bonus in (0.0, 1.0, 3.0):
        policy = Policy(parse_policy(f"softmax:temperature=0.7,max_explored_share=0.6,"
                                     f"new_item_bonus={bonus}"))
        marginals = policy.marginals(scores, K, features)
        shares.append(marginals[:, list(NEW_ITEMS)].sum())  # new items per answer
    assert shares[0] < shares[1] < shares[2] <= 3.0 + 1e-9
    with pytest.raises(ValueError, match="needs the items' features"):
        Policy(parse_policy("softmax:new_item_bonus=1")).marginals(scores, K)
    assert parse_policy("softmax:new_item_bonus=0").canonical() == parse_policy(
        "softmax").canonical()
    assert '"new_item_bonus":1.5' in parse_policy("softmax:new_item_bonus=1.5").canonical()


def test_other_categories_extend_the_pool_past_the_ranked_items():
    scores = np.linspace(1, 0, 9)
    outside = Policy(parse_policy("epsilon-greedy:epsilon=1,max_explored_share=0.4,pool=1,"
                                  "other_categories=4"))
    # list of 9: the answer's 5 (pool 1 < k) then 4 drawn items; all explored slots go there
    marginals = outside.marginals(scores, K)
    assert marginals[:, 5:].sum() == pytest.approx(2.0)  # floor(0.4 * 5) explored slots
    for seed in range(50):
        order = outside.choose(scores, K, np.random.default_rng(seed))
        assert all(rank == slot or rank >= 5 for slot, rank in enumerate(order))
    plain = Policy(parse_policy("epsilon-greedy:epsilon=1,max_explored_share=0.4,pool=1"))
    assert plain.marginals(scores, K)[:, 5:].sum() == 0.0  # without them: nothing to draw
    assert parse_policy("uniform:other_categories=0") == parse_policy("uniform")
    assert '"other_categories":4' in outside.spec.canonical()
    assert "other_categories" not in parse_policy("uniform").canonical()


def test_short_lists_and_other_policies_answers():
    scores = np.array([3.0, 2.0, 1.0])
    policy = Policy(parse_policy("softmax:temperature=1,max_explored_share=1"))
    assert len(policy.choose(scores, 10, np.random.default_rng(0))) == 3
    greedy = Policy(parse_policy("none"))
    # an answer greedy could not give has probability 0 from its first changed slot on
    steps = greedy.step_probabilities(scores, 3, np.array([0, 2, 1]))
    assert steps.tolist() == [1.0, 0.0, 0.0]
    eg = Policy(parse_policy("epsilon-greedy:epsilon=0.2,max_explored_share=0.5,pool=6"))
    scores = np.linspace(1, 0, 6)
    steps = eg.step_probabilities(scores, 4, np.array([0, 5, 2, 3]))
    assert steps[0] == pytest.approx(0.8) and steps[1] == pytest.approx(0.2 / 2)
    assert steps[2] == pytest.approx(0.8) and steps[3] == pytest.approx(0.8)
    # two explorations would pass the cap of 2 slots: a third is impossible
    assert eg.step_probabilities(scores, 4, np.array([4, 5, 2, 3]))[2] == 1.0


@pytest.mark.parametrize("raw, message", [
    ({"policy": "softmax", "temprature": 1}, r"exploration\.temprature: unknown field"),
    ({"policy": "softmax", "epsilon": 0.1}, r"exploration\.epsilon: policy 'softmax' does "
                                            "not take it"),
    ({"policy": "epsilon-greedy", "epsilon": 1.5}, r"exploration\.epsilon must be a number "
                                                   r"in \[0, 1\], got 1\.5"),
    ({"policy": "softmax", "temperature": 0}, r"exploration\.temperature must be a finite "
                                              "number > 0"),
    ({"policy": "softmax", "pool": 0}, r"exploration\.pool must be an integer in"),
    ({"policy": "greedy"}, r"exploration\.policy must be one of"),
    ("softmax:new_item_bonus=-1", r"exploration\.new_item_bonus must be a finite number"),
    ("epsilon-greedy:new_item_bonus=1", r"exploration\.new_item_bonus: policy "
                                        "'epsilon-greedy' does not take it"),
    ("softmax:other_categories=2", r"exploration\.other_categories: policy 'softmax' "
                                   "does not take it"),
    ("uniform:other_categories=1.5", r"exploration\.other_categories must be an integer in "
                                     r"\[0, 100\], got 1\.5"),
    ("uniform:other_categories=-1", r"exploration\.other_categories must be an integer"),
    ("softmax:temperature", r"'temperature' is not key=value"),
    ("softmax:temperature=hot", r"exploration\.temperature must be a number, got 'hot'"),
    (3, "must be a policy name or a mapping"),
])
def test_bad_specs_are_refused_naming_the_field(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_policy(raw)


def test_spec_text_and_mapping_agree():
    a = parse_policy("linucb:alpha=2,temperature=0.1")
    b = parse_policy({"policy": "linucb", "temperature": 0.1, "alpha": 2.0})
    assert a == b and a.canonical() == b.canonical()
    assert a.canonical() == ('{"alpha":2.0,"max_explored_share":0.2,"policy":"linucb",'
                             '"pool":50,"ridge":1.0,"temperature":0.1}')
    assert parse_policy("none").canonical() == '{"policy":"none"}'
    assert parse_policy("softmax:max_explored_share=0.25").explorable_slots(10) == 2


def test_bandit_state_round_trips_and_learns():
    rng = np.random.default_rng(5)
    state = LinUCBState(4, ridge=0.5)
    truth = np.array([0.5, -0.2, 0.1, 0.0])
    x = rng.normal(size=(3000, 4))
    state.show(x)
    state.reward(x, x @ truth + rng.normal(scale=0.1, size=3000))
    again = LinUCBState.from_bytes(state.to_bytes())
    assert again.updates == 3000 and np.array_equal(again.a, state.a)
    snapshot = again.snapshot()
    assert np.abs(snapshot.theta - truth).max() < 0.02
    # the bound is wider for a direction the bandit has seen less
    assert snapshot.upper_bounds(np.array([[0, 0, 0, 0.0]]), 1.0)[0] == 0.0
    with pytest.raises(ValueError, match="not a LinUCB state"):
        LinUCBState.from_bytes(b"nonsense" * 4)
    with pytest.raises(ValueError, match="features have 3 columns, the bandit 4"):
        state.show(np.zeros((2, 3)))
