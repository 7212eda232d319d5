"""Business rules after ranking: exclusions, score normalisation, recency boost, diversity.

``apply_rules`` runs per request on a few hundred candidates, in plain Python (no pandas),
and copies only the items it returns.

Guarantees of ``apply_rules``:

* It never returns an excluded item, never more than ``k`` items and never two candidates with
  the same ``item_id`` (the best scored copy wins).
* It is deterministic: the same input gives the same output; ties keep input order. It does not
  modify its input: the candidates it returns are copies with adjusted scores and reasons.
* It returns ``min(k, number of distinct kept items)`` items. The per-category cap yields to
  that: when too few categories remain, the best skipped items fill the list and their reasons
  say "diversity cap relaxed".
* ``k <= 0`` is a ``ValueError``; a bad ``RulesConfig`` value is a ``ConfigError`` naming it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from recsys.config import (
    Config,
    finite_non_negative_number,
    finite_positive_number,
    in_range,
    non_negative_int,
    setting,
)

SECONDS_PER_DAY = 86_400


@dataclass
class Candidate:
    """One recommendable item; ``score`` is higher-is-better, ``reasons`` what rules did to it."""

    item_id: str
    score: float
    source: str
    category: str = ""
    created_at_s: int | None = None
    reasons: list[str] = field(default_factory=list)
    team: str | None = None  # an interleaved answer: the arm whose list placed it

    def copy(self) -> "Candidate":
        """A copy with its own reasons list (much cheaper than ``dataclasses.replace``)."""
        return Candidate(self.item_id, self.score, self.source, self.category,
                         self.created_at_s, list(self.reasons), self.team)


@dataclass(frozen=True)
class RulesConfig(Config):
    """Attributes:
        recency_boost: the largest additive boost (an item created now); 0 disables it.
        recency_half_life_days: age at which the boost has halved.
        max_per_category: largest share of the returned list one category may take, in (0, 1];
            ``max(1, floor(max_per_category * k))`` items.
        new_item_slots: places at the end of a list of more than this many items kept for
            the best-ranked items from the stream's fresh-item index (source ``fresh``) that
            did not make the list on their score: the ranker has never seen them, so without
            an exploration slot a new item would rarely be shown; 0 disables it.
        new_item_age_days: items created less than this long ago are new: an exploration
            policy's pool takes them right after the fresh-item index's (see
            ``apply_rules``), so exploring discovers new items rather than only the ranked
            list's next places.
    """

    recency_boost: float = setting(0.1, finite_non_negative_number)
    recency_half_life_days: float = setting(30.0, finite_positive_number)
    max_per_category: float = setting(0.4, in_range(0.0, 1.0, low_open=True))
    new_item_slots: int = setting(1, non_negative_int)
    new_item_age_days: float = setting(1.0, finite_non_negative_number)


def _copy(candidate: Candidate) -> Candidate:
    return candidate.copy()


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ValueError(f"k must be a positive integer (items to return), got {k!r}")


def _rank_key(candidate: Candidate) -> float:
    """Sort key for score descending; a NaN score sorts last instead of breaking the sort."""
    return math.inf if math.isnan(candidate.score) else -candidate.score


def merge_sources(*lists: Sequence[Candidate], copy: bool = True) -> list[Candidate]:
    """One candidate per item_id, lists in priority order: the first entry of an item is kept
    (as a copy) and each other source giving it adds "also from <source>" to its reasons.
    ``copy=False`` keeps the given objects themselves (the reasons are added to them): for
    lists built for this merge alone."""
    merged: dict[str, Candidate] = {}
    for candidates in lists:
        for candidate in candidates:
            kept = merged.get(candidate.item_id)
            if kept is None:
                merged[candidate.item_id] = _copy(candidate) if copy else candidate
                continue
            reason = f"also from {candidate.source}"
            if candidate.source != kept.source and reason not in kept.reasons:
                kept.reasons.append(reason)
    return list(merged.values())


def remove_excluded(candidates: Sequence[Candidate],
                    excluded: Collection[str]) -> tuple[list[Candidate], int]:
    """The candidates whose item_id is not in ``excluded`` (consumed or excluded by the
    request), in order, and how many were removed."""
    if not isinstance(excluded, (set, frozenset, dict)):
        excluded = set(excluded)
    kept = [c for c in candidates if c.item_id not in excluded]
    return kept, len(candidates) - len(kept)


def normalise_scores(candidates: Sequence[Candidate]) -> None:
    """Rescale scores in place to [0, 1] by min-max (all equal -> all 1.0), so the recency
    boost means the same whatever model scored them. A non-finite score becomes 0.0."""
    finite = [c.score for c in candidates if math.isfinite(c.score)]
    if not finite:
        low = high = 0.0
    else:
        low, high = min(finite), max(finite)
    span = high - low
    for c in candidates:
        if not math.isfinite(c.score):
            c.score = 0.0
            c.reasons.append("non-finite score treated as lowest")
        else:
            c.score = (c.score - low) / span if span > 0 else 1.0


def apply_recency_boost(candidates: Sequence[Candidate], now_s: int, cfg: RulesConfig) -> None:
    """In place: ``score += recency_boost * 0.5 ** (age_days / half_life)`` for candidates with
    ``created_at_s`` (an item from the future counts as age 0); others are left alone."""
    if cfg.recency_boost == 0:
        return
    for c in candidates:
        if c.created_at_s is None:
            continue
        age_days = max(0.0, (now_s - c.created_at_s) / SECONDS_PER_DAY)
        boost = cfg.recency_boost * 0.5 ** (age_days / cfg.recency_half_life_days)
        c.score += boost
        if boost >= 0.01:
            c.reasons.append(f"recency boost +{boost:.2f}")


def category_cap(k: int, cfg: RulesConfig) -> int:
    """Most items one category may take in a list of ``k``: max(1, floor(share * k))."""
    _check_k(k)
    return max(1, math.floor(cfg.max_per_category * k + 1e-9))  # 0.29 * 100 is 28.99...


def diversify(candidates: Sequence[Candidate], k: int, cfg: RulesConfig) -> list[Candidate]:
    """The best ``k`` candidates by score (ties: earlier first) with at most ``category_cap``
    per category; an empty category is unique to its item and never capped. Later copies of
    an item_id are dropped. The cap yields to returning k items: if it leaves fewer, the best
    skipped items fill the list after the capped picks, "diversity cap relaxed" appended to
    their reasons (in place)."""
    order = sorted(range(len(candidates)), key=lambda i: _rank_key(candidates[i]))
    picked, relaxed = _diversified(order, candidates, k, cfg)
    for i in relaxed:
        candidates[i].reasons.append("diversity cap relaxed")
    return [candidates[i] for i in picked + relaxed]


def reserve_new_item_slots(top: Sequence[Candidate], ranked: Sequence[Candidate],
                           cfg: RulesConfig) -> list[Candidate]:
    """``top`` with its last places given to the best of ``ranked`` (in order) whose source is
    ``fresh`` and that ``top`` lacks, at most ``new_item_slots`` of them and only when ``top``
    holds more than that many items; each gets "new item slot" in its reasons (in place)."""
    slots = cfg.new_item_slots
    if slots == 0 or len(top) <= slots:
        return list(top)
    have = {c.item_id for c in top}
    new = [c for c in ranked if c.source == "fresh" and c.item_id not in have][:slots]
    if not new:
        return list(top)
    for c in new:
        c.reasons.append("new item slot")
    return list(top[:len(top) - len(new)]) + new


def _rule_scores(candidates: Sequence[Candidate], now_s: int, cfg: RulesConfig
                 ) -> tuple[list[float], Callable[[int], list[str]]]:
    """What ``normalise_scores`` then ``apply_recency_boost`` would make of each candidate's
    score, computed without touching them, and a function giving the reasons they would add
    to the candidate at a position (written only for the candidates returned)."""
    finite = [c.score for c in candidates if math.isfinite(c.score)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 0.0)
    span = high - low
    scores: list[float] = []
    boosts: list[float] = []
    boost_on, half_life = cfg.recency_boost != 0, cfg.recency_half_life_days
    for c in candidates:
        score = ((c.score - low) / span if span > 0 else 1.0) if math.isfinite(c.score) \
            else 0.0
        boost = 0.0
        if boost_on and c.created_at_s is not None:
            age_days = max(0.0, (now_s - c.created_at_s) / SECONDS_PER_DAY)
            boost = cfg.recency_boost * 0.5 ** (age_days / half_life)
            score += boost
        scores.append(score)
        boosts.append(boost)

    def notes(i: int) -> list[str]:
        note = [] if math.isfinite(candidates[i].score) else [
            "non-finite score treated as lowest"]
        if boosts[i] >= 0.01:
            note.append(f"recency boost +{boosts[i]:.2f}")
        return note

    return scores, notes


def _diversified(order: Sequence[int], candidates: Sequence[Candidate], k: int,
                 cfg: RulesConfig) -> tuple[list[int], list[int]]:
    """``diversify`` on positions, ``order`` best first: (the capped picks, the skipped ones
    that fill the list)."""
    cap = category_cap(k, cfg)
    picked: list[int] = []
    skipped: list[int] = []
    seen: set[str] = set()
    per_category: dict[str, int] = {}
    for i in order:
        if len(picked) == k:
            break
        c = candidates[i]
        if c.item_id in seen:
            continue
        seen.add(c.item_id)
        if c.category:
            if per_category.get(c.category, 0) >= cap:
                skipped.append(i)
                continue
            per_category[c.category] = per_category.get(c.category, 0) + 1
        picked.append(i)
    return picked, skipped[:k - len(picked)]


def _pool(kept: Sequence[Candidate], order: Sequence[int], taken: set[str], size: int,
          new_since_s: float) -> list[int]:
    """Up to ``size`` positions of ``kept`` not ``taken``: fresh-index items, then items
    created from ``new_since_s`` on, then the rest, each group in ``order`` (one pass)."""
    groups: tuple[list[int], list[int], list[int]] = ([], [], [])
    for i in order:
        c = kept[i]
        if c.item_id in taken:
            continue
        taken.add(c.item_id)
        if c.source == "fresh":
            groups[0].append(i)
        elif c.created_at_s is not None and c.created_at_s >= new_since_s:
            groups[1].append(i)
        elif len(groups[2]) < size:  # the rest: only as many as could be taken
            groups[2].append(i)
    return (groups[0] + groups[1] + groups[2])[:size]


def apply_rules(candidates: Sequence[Candidate], k: int, now_s: int,
                excluded: Collection[str],
                cfg: RulesConfig, extra: int = 0) -> tuple[list[Candidate], dict[str, Any]]:
    """remove_excluded -> normalise_scores -> apply_recency_boost -> diversify ->
    reserve_new_item_slots, computed on positions: only the items returned are copied (a
    test holds the result equal to those functions run in turn on copies).

    Returns the top k and stats: "removed" (excluded candidates dropped), "candidates_in"
    (candidates given) and "categories" (distinct non-empty categories in the result).
    ``extra``: the top k is followed by up to ``extra`` more items (an exploration policy's
    pool): the items from the fresh-item index first, then new items (created less than
    ``new_item_age_days`` before ``now_s``), then the best of the rest, each group by rule
    score; the top k is the same with or without them."""
    _check_k(k)
    kept, removed = remove_excluded(candidates, excluded)
    scores, notes = _rule_scores(kept, now_s, cfg)
    order = sorted(range(len(kept)), key=lambda i: -scores[i])  # stable: ties keep order
    picked, relaxed = _diversified(order, kept, k, cfg)
    top = picked + relaxed
    new: list[int] = []
    if cfg.new_item_slots and len(top) > cfg.new_item_slots:
        have = {kept[i].item_id for i in top}
        new = [i for i in order if kept[i].source == "fresh"
               and kept[i].item_id not in have][:cfg.new_item_slots]
        top = top[:len(top) - len(new)] + new
    tagged = {i: ["diversity cap relaxed"] for i in relaxed}
    for i in new:
        tagged[i] = tagged.get(i, []) + ["new item slot"]
    if extra:
        top = top + _pool(kept, order, {kept[i].item_id for i in top}, extra,
                          now_s - cfg.new_item_age_days * SECONDS_PER_DAY)
    out = [Candidate(kept[i].item_id, scores[i], kept[i].source, kept[i].category,
                     kept[i].created_at_s, [*kept[i].reasons, *notes(i), *tagged.get(i, ())])
           for i in top]
    stats = {"removed": removed, "candidates_in": len(candidates),
             "categories": len({c.category for c in out if c.category})}
    return out, stats


__all__ = [
    "Candidate",
    "RulesConfig",
    "merge_sources",
    "remove_excluded",
    "normalise_scores",
    "apply_recency_boost",
    "category_cap",
    "diversify",
    "reserve_new_item_slots",
    "apply_rules",
]
