"""Tests of the business rules stage: merge, exclusions, normalisation, recency, diversity."""

from __future__ import annotations

import copy
import dataclasses
import math
import random
from collections import Counter

import pytest

from recsys.errors import ConfigError
from serving.recommendations.rules import (
    Candidate,
    RulesConfig,
    apply_recency_boost,
    apply_rules,
    category_cap,
    diversify,
    merge_sources,
    normalise_scores,
    remove_excluded,
    reserve_new_item_slots,
)

NOW_S = 1_800_000_000
DAY_S = 86_400


def cand(item_id: str, score: float, category: str = "", source: str = "two-tower",
         created_at_s: int | None = None) -> Candidate:
    return Candidate(item_id=item_id, score=score, source=source, category=category,
                     created_at_s=created_at_s)


def ids(candidates: list[Candidate]) -> list[str]:
    return [c.item_id for c in candidates]


def dominated_by_drama(n_drama: int = 30) -> list[Candidate]:
    """The best ``n_drama`` candidates are all drama; a few other categories come after."""
    drama = [cand(f"d{i}", 100.0 - i, "drama") for i in range(n_drama)]
    others = [cand(f"c{i}", 50.0 - i, "comedy") for i in range(3)]
    others += [cand(f"h{i}", 40.0 - i, "horror") for i in range(3)]
    others += [cand(f"u{i}", 30.0 - i) for i in range(2)]  # no category
    return drama + others


# --- merge_sources -----------------------------------------------------------------------------

def test_merge_keeps_the_first_lists_entry_and_records_the_other_sources() -> None:
    two_tower = [cand("a", 0.9), cand("b", 0.8)]
    trending = [cand("b", 5.0, source="trending"), cand("c", 4.0, source="trending")]
    popular = [cand("a", 7.0, source="segment-popular"), cand("d", 1.0, source="segment-popular")]
    merged = merge_sources(two_tower, trending, popular)
    assert ids(merged) == ["a", "b", "c", "d"]
    by_id = {c.item_id: c for c in merged}
    assert (by_id["b"].score, by_id["b"].source) == (0.8, "two-tower")
    assert by_id["b"].reasons == ["also from trending"]
    assert by_id["a"].reasons == ["also from segment-popular"]
    assert by_id["c"].reasons == [] and by_id["d"].reasons == []
    assert two_tower[0].reasons == [] and two_tower[1].reasons == []  # inputs untouched


def test_an_uncopied_merge_gives_the_same_list_made_of_the_given_objects() -> None:
    def sources():
        return ([cand("a", 0.9), cand("b", 0.8)],
                [cand("b", 5.0, source="trending"), cand("c", 4.0, source="trending")])

    copied, (two_tower, trending) = merge_sources(*sources()), sources()
    uncopied = merge_sources(two_tower, trending, copy=False)
    assert uncopied == copied
    assert uncopied[0] is two_tower[0] and uncopied[2] is trending[1]
    assert two_tower[1].reasons == ["also from trending"]  # the kept object took the reason


def test_merge_does_not_repeat_a_source_reason() -> None:
    merged = merge_sources([cand("a", 1.0)], [cand("a", 2.0, source="trending")],
                           [cand("a", 3.0, source="trending"), cand("a", 4.0)])
    assert len(merged) == 1
    assert merged[0].reasons == ["also from trending"]


def test_merge_of_nothing_is_empty() -> None:
    assert merge_sources() == []
    assert merge_sources([], []) == []


# --- remove_excluded ---------------------------------------------------------------------------

def test_remove_excluded_counts_and_keeps_order() -> None:
    kept, removed = remove_excluded([cand("a", 1), cand("b", 2), cand("c", 3)], ["b", "zz"])
    assert ids(kept) == ["a", "c"]
    assert removed == 1


def test_excluded_items_are_never_returned_even_when_best_scored() -> None:
    candidates = [cand("best", 99.0, "drama", created_at_s=NOW_S), cand("x", 1.0, "drama"),
                  cand("y", 0.5, "comedy"), cand("z", 0.1)]
    top, stats = apply_rules(candidates, k=10, now_s=NOW_S, excluded={"best", "z"},
                             cfg=RulesConfig())
    assert ids(top) == ["x", "y"]
    assert stats["removed"] == 2
    assert stats["candidates_in"] == 4


def test_excluded_duplicates_are_all_removed() -> None:
    top, stats = apply_rules([cand("a", 5.0), cand("b", 1.0), cand("a", 3.0, source="trending")],
                             k=5, now_s=NOW_S, excluded=("a",), cfg=RulesConfig())
    assert ids(top) == ["b"]
    assert stats["removed"] == 2


# --- normalise_scores --------------------------------------------------------------------------

def test_normalise_min_max() -> None:
    candidates = [cand("a", -2.0), cand("b", 0.0), cand("c", 2.0)]
    normalise_scores(candidates)
    assert [c.score for c in candidates] == [0.0, 0.5, 1.0]


def test_normalise_all_equal_is_all_one_and_empty_is_fine() -> None:
    candidates = [cand("a", 3.0), cand("b", 3.0)]
    normalise_scores(candidates)
    assert [c.score for c in candidates] == [1.0, 1.0]
    normalise_scores([])


def test_normalise_non_finite_scores_become_lowest() -> None:
    candidates = [cand("a", math.nan), cand("b", 4.0), cand("c", 2.0), cand("d", math.inf)]
    normalise_scores(candidates)
    assert [c.score for c in candidates] == [0.0, 1.0, 0.0, 0.0]
    assert candidates[0].reasons == ["non-finite score treated as lowest"]


# --- apply_recency_boost -----------------------------------------------------------------------

def test_recency_boost_halves_per_half_life_and_records_a_reason() -> None:
    cfg = RulesConfig(recency_boost=0.2, recency_half_life_days=10.0)
    fresh = cand("fresh", 0.5, created_at_s=NOW_S)
    ten_days = cand("old", 0.5, created_at_s=NOW_S - 10 * DAY_S)
    apply_recency_boost([fresh, ten_days], NOW_S, cfg)
    assert fresh.score == pytest.approx(0.7)
    assert ten_days.score == pytest.approx(0.6)
    assert fresh.reasons == ["recency boost +0.20"]
    assert ten_days.reasons == ["recency boost +0.10"]


def test_recency_boost_orders_newer_above_equally_scored_older() -> None:
    older = cand("older", 1.0, "drama", created_at_s=NOW_S - 90 * DAY_S)
    newer = cand("newer", 1.0, "comedy", created_at_s=NOW_S - 1 * DAY_S)
    top, _ = apply_rules([older, newer], k=2, now_s=NOW_S, excluded=(), cfg=RulesConfig())
    assert ids(top) == ["newer", "older"]  # without the boost the tie keeps input order
    top, _ = apply_rules([older, newer], k=2, now_s=NOW_S, excluded=(),
                         cfg=RulesConfig(recency_boost=0.0))
    assert ids(top) == ["older", "newer"]


def test_recency_boost_clips_future_items_to_age_zero() -> None:
    cfg = RulesConfig(recency_boost=0.1)
    future = cand("future", 0.0, created_at_s=NOW_S + 365 * DAY_S)
    apply_recency_boost([future], NOW_S, cfg)
    assert future.score == pytest.approx(0.1)  # never more than the maximum boost


def test_no_recency_boost_without_created_at() -> None:
    undated = cand("undated", 0.5)
    apply_recency_boost([undated], NOW_S, RulesConfig(recency_boost=0.5))
    assert undated.score == 0.5
    assert undated.reasons == []


def test_tiny_recency_boost_has_no_reason() -> None:
    four_half_lives = cand("old", 0.5, created_at_s=NOW_S - 120 * DAY_S)
    apply_recency_boost([four_half_lives], NOW_S, RulesConfig())
    assert four_half_lives.score == pytest.approx(0.5 + 0.1 / 16)  # boosted, under 0.01
    assert four_half_lives.reasons == []


# --- diversify ---------------------------------------------------------------------------------

def test_category_cap() -> None:
    assert category_cap(10, RulesConfig(max_per_category=0.4)) == 4
    assert category_cap(2, RulesConfig(max_per_category=0.4)) == 1  # floor 0 -> at least 1
    assert category_cap(100, RulesConfig(max_per_category=0.29)) == 29  # not 28.999...
    assert category_cap(7, RulesConfig(max_per_category=1.0)) == 7


def test_diversity_cap_with_a_list_dominated_by_one_category() -> None:
    candidates = dominated_by_drama()
    top = diversify(candidates, 10, RulesConfig(max_per_category=0.4))
    counts = Counter(c.category for c in top)
    assert len(top) == 10
    assert counts["drama"] == 4
    assert ids(top) == ["d0", "d1", "d2", "d3", "c0", "c1", "c2", "h0", "h1", "h2"]
    assert all("diversity cap relaxed" not in c.reasons for c in top)


def test_apply_rules_diversity_cap_at_most_four_per_category() -> None:
    candidates = dominated_by_drama()
    top, stats = apply_rules(candidates, k=10, now_s=NOW_S, excluded=(), cfg=RulesConfig())
    assert max(Counter(c.category for c in top if c.category).values()) <= 4
    assert len(top) == 10
    assert stats["categories"] == 3


def test_uncategorised_items_are_never_capped() -> None:
    candidates = [cand(f"u{i}", 10.0 - i) for i in range(6)] + [cand("d", 1.0, "drama")]
    top = diversify(candidates, 5, RulesConfig(max_per_category=0.2))
    assert ids(top) == ["u0", "u1", "u2", "u3", "u4"]


def test_categories_stat_counts_distinct_non_empty_categories() -> None:
    candidates = [cand("u0", 9.0), cand("u1", 8.0), cand("d0", 7.0, "drama"),
                  cand("d1", 6.0, "drama"), cand("c0", 5.0, "comedy")]
    top, stats = apply_rules(candidates, k=5, now_s=NOW_S, excluded=(),
                             cfg=RulesConfig(max_per_category=1.0))
    assert len(top) == 5
    assert stats["categories"] == 2


def test_cap_is_relaxed_when_too_few_categories() -> None:
    candidates = [cand(f"d{i}", 10.0 - i, "drama") for i in range(8)]
    candidates.append(cand("c0", 0.5, "comedy"))
    top = diversify(candidates, 5, RulesConfig(max_per_category=0.4))  # cap 2
    assert ids(top) == ["d0", "d1", "c0", "d2", "d3"]
    relaxed = [c.item_id for c in top if "diversity cap relaxed" in c.reasons]
    assert relaxed == ["d2", "d3"]


def test_k_larger_than_candidates_returns_all() -> None:
    candidates = [cand("a", 1.0, "drama"), cand("b", 3.0, "drama"), cand("c", 2.0, "comedy")]
    top, stats = apply_rules(candidates, k=50, now_s=NOW_S, excluded=(), cfg=RulesConfig())
    assert ids(top) == ["b", "c", "a"]
    assert stats == {"removed": 0, "candidates_in": 3, "categories": 2}


def test_diversify_is_stable_for_ties_and_drops_duplicate_ids() -> None:
    candidates = [cand("a", 1.0), cand("b", 2.0), cand("c", 1.0), cand("b", 5.0), cand("d", 1.0)]
    top = diversify(candidates, 4, RulesConfig(max_per_category=1.0))
    assert ids(top) == ["b", "a", "c", "d"]
    assert top[0].score == 5.0


def test_empty_input_returns_empty() -> None:
    assert diversify([], 3, RulesConfig()) == []
    top, stats = apply_rules([], k=3, now_s=NOW_S, excluded=(), cfg=RulesConfig())
    assert top == []
    assert stats == {"removed": 0, "candidates_in": 0, "categories": 0}


# --- apply_rules guarantees --------------------------------------------------------------------

def random_candidates(seed: int, n: int = 200) -> list[Candidate]:
    rng = random.Random(seed)
    sources = ["two-tower", "trending", "segment-popular", "category-centroid"]
    categories = ["drama", "comedy", "horror", "action", ""]
    return [cand(f"i{rng.randrange(n)}", rng.choice([0.5, rng.uniform(-3, 3)]),
                 rng.choices(categories, weights=[10, 3, 2, 1, 1])[0], rng.choice(sources),
                 rng.choice([None, NOW_S - rng.randrange(400) * DAY_S]))
            for _ in range(n)]


def _rules_in_turn(candidates, k, now_s, excluded, cfg):
    """The rule functions run one after the other on copies: what ``apply_rules`` must give."""
    kept = [c.copy() for c in remove_excluded(candidates, excluded)[0]]
    normalise_scores(kept)
    apply_recency_boost(kept, now_s, cfg)
    kept.sort(key=lambda c: math.inf if math.isnan(c.score) else -c.score)
    return reserve_new_item_slots(diversify(kept, k, cfg), kept, cfg)


@pytest.mark.parametrize("seed", range(40))
def test_apply_rules_equals_the_rules_run_in_turn(seed: int) -> None:
    rng = random.Random(seed)
    candidates = random_candidates(seed, n=rng.choice([5, 50, 220]))
    for c in rng.sample(candidates, len(candidates) // 10):  # fresh items, odd scores
        c.source = "fresh"
        c.score = rng.choice([c.score, math.nan, math.inf, 0.5])
    if seed % 4 == 0:  # all scores equal
        for c in candidates:
            c.score = 1.25
    cfg = RulesConfig(recency_boost=rng.choice([0.0, 0.1, 0.5]),
                      max_per_category=rng.choice([0.1, 0.4, 1.0]),
                      new_item_slots=rng.choice([0, 1, 3]))
    excluded = {f"i{i}" for i in range(0, 200, rng.choice([3, 7, 500]))}
    k = rng.choice([1, 5, 10, 60])
    expected = _rules_in_turn(candidates, k, NOW_S, excluded, cfg)
    got, _ = apply_rules(candidates, k, NOW_S, excluded, cfg)
    assert [dataclasses.astuple(c) for c in got] == [dataclasses.astuple(c) for c in expected]


@pytest.mark.parametrize("seed", range(5))
def test_guarantees_on_random_requests(seed: int) -> None:
    candidates = random_candidates(seed)
    excluded = {f"i{i}" for i in range(0, 200, 3)}
    k = 10
    top, stats = apply_rules(candidates, k, NOW_S, excluded, RulesConfig())
    assert len(top) == k
    assert not excluded & set(ids(top))
    assert len(set(ids(top))) == len(top)
    assert stats["removed"] == sum(c.item_id in excluded for c in candidates)
    capped = Counter(c.category for c in top if c.category)
    relaxed = [c for c in top if "diversity cap relaxed" in c.reasons]
    assert relaxed or max(capped.values(), default=0) <= 4


def test_apply_rules_is_deterministic_and_leaves_its_input_alone() -> None:
    candidates = random_candidates(7)
    before = copy.deepcopy(candidates)
    first = apply_rules(candidates, 10, NOW_S, {"i3"}, RulesConfig())
    second = apply_rules(candidates, 10, NOW_S, {"i3"}, RulesConfig())
    assert first == second
    assert candidates == before
    from_a_copy = apply_rules(copy.deepcopy(candidates), 10, NOW_S, {"i3"}, RulesConfig())
    assert from_a_copy == first


# --- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"recency_boost": -0.1}, r"^recency_boost must be a finite number >= 0, got -0\.1$"),
    ({"recency_boost": math.nan}, r"^recency_boost must be a finite number >= 0, got nan$"),
    ({"recency_boost": True}, r"^recency_boost must be a finite number >= 0, got True$"),
    ({"recency_half_life_days": 0.0},
     r"^recency_half_life_days must be a finite number > 0, got 0\.0$"),
    ({"recency_half_life_days": -5},
     r"^recency_half_life_days must be a finite number > 0, got -5$"),
    ({"recency_half_life_days": math.inf},
     r"^recency_half_life_days must be a finite number > 0, got inf$"),
    ({"max_per_category": 0.0}, r"^max_per_category must be a number in \(0, 1\], got 0\.0$"),
    ({"max_per_category": 1.5}, r"^max_per_category must be a number in \(0, 1\], got 1\.5$"),
    ({"max_per_category": "0.4"}, r"^max_per_category must be a number in \(0, 1\], got '0\.4'$"),
])
def test_bad_rules_config_names_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RulesConfig(**kwargs)  # type: ignore[arg-type]


def test_rules_config_accepts_its_bounds() -> None:
    RulesConfig(recency_boost=0.0, recency_half_life_days=0.5, max_per_category=1.0)
    RulesConfig(recency_boost=1, recency_half_life_days=7, max_per_category=1)


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_bad_k_is_a_value_error(k: object) -> None:
    message = rf"^k must be a positive integer \(items to return\), got {k!r}$"
    with pytest.raises(ValueError, match=message):
        apply_rules([cand("a", 1.0)], k, NOW_S, (), RulesConfig())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        diversify([cand("a", 1.0)], k, RulesConfig())  # type: ignore[arg-type]


# --- new item slots ----------------------------------------------------------------------------

def test_a_fresh_item_ranked_below_the_list_takes_its_last_place() -> None:
    ranked = [cand(f"a{i}", 10.0 - i) for i in range(6)] + [
        cand("new1", 1.0, source="fresh"), cand("new2", 0.5, source="fresh")]
    top, _ = apply_rules(ranked, k=4, now_s=NOW_S, excluded=(), cfg=RulesConfig())
    assert ids(top) == ["a0", "a1", "a2", "new1"]
    assert "new item slot" in top[-1].reasons
    two, _ = apply_rules(ranked, k=4, now_s=NOW_S, excluded=(),
                         cfg=RulesConfig(new_item_slots=2))
    assert ids(two) == ["a0", "a1", "new1", "new2"]


def test_new_item_slots_leave_lists_alone_when_not_needed() -> None:
    plain = [cand(f"a{i}", 10.0 - i) for i in range(6)]
    assert ids(apply_rules(plain, k=4, now_s=NOW_S, excluded=(), cfg=RulesConfig())[0]) == [
        "a0", "a1", "a2", "a3"]  # no fresh item: nothing changes
    on_merit = [cand("new1", 20.0, source="fresh")] + plain
    top, _ = apply_rules(on_merit, k=4, now_s=NOW_S, excluded=(), cfg=RulesConfig())
    assert ids(top) == ["new1", "a0", "a1", "a2"]  # made it on its score: no slot used
    assert all("new item slot" not in c.reasons for c in top)
    fresh_last = plain + [cand("new1", 0.0, source="fresh")]
    assert ids(apply_rules(fresh_last, k=4, now_s=NOW_S, excluded=(),
                           cfg=RulesConfig(new_item_slots=0))[0]) == ["a0", "a1", "a2", "a3"]
    assert ids(apply_rules(fresh_last, k=1, now_s=NOW_S, excluded=(),
                           cfg=RulesConfig())[0]) == ["a0"]  # a list of one keeps its best
    assert ids(apply_rules(fresh_last, k=4, now_s=NOW_S, excluded=("new1",),
                           cfg=RulesConfig())[0]) == ["a0", "a1", "a2", "a3"]


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1"])
def test_new_item_slots_must_be_a_count(bad) -> None:
    with pytest.raises(ConfigError, match=f"new_item_slots must be an integer >= 0, got "
                                          f"{bad!r}"):
        RulesConfig(new_item_slots=bad)


def test_an_exploration_pool_follows_the_same_answer():
    """``extra``: the top k is unchanged; then fresh-index items, new items, the rest, each
    by rule score; never an excluded item or one twice."""
    cfg = RulesConfig(recency_boost=0.0, new_item_slots=0, max_per_category=1.0)
    candidates = [cand(f"old{n}", 10.0 - n, created_at_s=NOW_S - 30 * DAY_S) for n in range(8)]
    candidates += [cand("new-low", 0.5, created_at_s=NOW_S - DAY_S // 2),
                   cand("new-high", 3.5, created_at_s=NOW_S - 3600),
                   cand("fresh", 0.1, source="fresh", created_at_s=NOW_S - 60),
                   cand("gone", 9.5), cand("old0", 1.0)]
    top, _ = apply_rules(candidates, 3, NOW_S, {"gone"}, cfg)
    answer, _ = apply_rules(candidates, 3, NOW_S, {"gone"}, cfg, extra=6)
    assert ids(answer[:3]) == ids(top) == ["old0", "old1", "old2"]
    assert ids(answer[3:]) == ["fresh", "new-high", "new-low", "old3", "old4", "old5"]
    older = dataclasses.replace(cfg, new_item_age_days=0.01)  # 14 minutes: only "fresh" is new
    answer, _ = apply_rules(candidates, 3, NOW_S, {"gone"}, older, extra=3)
    assert ids(answer[3:]) == ["fresh", "old3", "old4"]
