"""Team-draft interleaving (Radlinski, Kurup & Joachims, "How does clickthrough data reflect
retrieval quality?", CIKM 2008): two rankers compared on the same requests. Each request
shows one list drafted from both rankers' lists; a click credits the ranker whose "team"
placed the item; a user prefers the ranker with more credited clicks.

Guarantees of :func:`team_draft`: the list holds no item twice, at most ``k`` items, and each
team's items appear in its own ranker's order; the teams take turns, a coin (from ``rng``)
choosing who picks first whenever they have picked equally often, so with equal lists each
team is credited half of random clicks. :func:`preference_test` is a two-sided sign test
(``scipy.stats.binomtest``) over users with a preference, as in Chapelle et al., "Large-scale
validation and analysis of interleaved search evaluation" (TOIS 2012).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scipy import stats

A, B = "a", "b"


def team_draft(ranking_a: Sequence[str], ranking_b: Sequence[str], k: int,
               rng: random.Random) -> tuple[list[str], list[str]]:
    """The interleaved list of at most ``k`` items and the team (``"a"`` or ``"b"``) of each
    position."""
    if k <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    shown: list[str] = []
    teams: list[str] = []
    taken: set[str] = set()
    next_a = next_b = picks_a = picks_b = 0
    while len(shown) < k:
        while next_a < len(ranking_a) and ranking_a[next_a] in taken:
            next_a += 1
        while next_b < len(ranking_b) and ranking_b[next_b] in taken:
            next_b += 1
        left_a, left_b = next_a < len(ranking_a), next_b < len(ranking_b)
        if not (left_a or left_b):
            break
        a_turn = picks_a < picks_b or (picks_a == picks_b and rng.random() < 0.5)
        if (a_turn and left_a) or not left_b:
            item, team = ranking_a[next_a], A
            picks_a += 1
        else:
            item, team = ranking_b[next_b], B
            picks_b += 1
        shown.append(item)
        teams.append(team)
        taken.add(item)
    return shown, teams


def credit(teams: Sequence[str], clicked_positions: Iterable[int]) -> tuple[int, int]:
    """Clicks credited to (a, b)."""
    clicked = [teams[p] for p in clicked_positions]
    return clicked.count(A), clicked.count(B)


@dataclass(frozen=True)
class Preference:
    users_preferring_a: int
    users_preferring_b: int
    ties: int
    share_a: float  # among users with a preference
    p_value: float  # two-sided sign test of share_a = 0.5

    @property
    def winner(self) -> str | None:
        """``"a"`` or ``"b"`` at the 5% level, else None."""
        if self.p_value >= 0.05:
            return None
        return A if self.users_preferring_a > self.users_preferring_b else B


def preference_test(per_user_credit: Iterable[tuple[int, int]]) -> Preference:
    """The sign test over users of their summed credits (a, b)."""
    wins_a = wins_b = ties = 0
    for a, b in per_user_credit:
        if a > b:
            wins_a += 1
        elif b > a:
            wins_b += 1
        else:
            ties += 1
    decided = wins_a + wins_b
    p_value = float(stats.binomtest(wins_a, decided, 0.5).pvalue) if decided else 1.0
    return Preference(wins_a, wins_b, ties, wins_a / decided if decided else 0.5, p_value)


__all__ = ["team_draft", "credit", "preference_test", "Preference", "A", "B"]
