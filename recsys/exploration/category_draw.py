"""The probability that a uniform draw of categories put an answer's drawn items in its list.

A spec's ``other_categories`` adds to the list one item from each of ``drawn`` categories
drawn uniformly without replacement from ``eligible`` (the categories the answer does not
show that still have an item to offer). Each such item is in the list with probability
``drawn / eligible``, and ``d`` given ones all are with ``prod_{i<d} (drawn - i) /
(eligible - i)``. Given the list, the policy's law treats the drawn items alike (they
follow the ranked items in the pool, with score 0), so a slot's probability given the ranked
list alone is its probability given the whole list times that inclusion: the propensities
the exposure log records are exact given the ranked list, like every other policy's, and an
item that a different draw would have listed keeps its share of the support.

Guarantees: the factors are exact rationals computed in float64; ``1`` for every slot that
shows a ranked item; no factor above 1.
"""

from __future__ import annotations

import numpy as np


def inclusion_factors(shows_drawn: np.ndarray, drawn: int, eligible: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per slot: (the factor of its marginal propensity, the factor of its cascade
    propensity), for an answer whose slots show a drawn item where ``shows_drawn``."""
    shows_drawn = np.asarray(shows_drawn, dtype=bool)
    if shows_drawn.any() and not 0 < drawn <= eligible:
        raise ValueError(f"{int(shows_drawn.sum())} slots show drawn items, but {drawn} "
                         f"items were drawn from {eligible} categories")
    marginal = np.where(shows_drawn, drawn / eligible if eligible else 1.0, 1.0)
    shown_so_far = np.cumsum(shows_drawn)
    steps = [(drawn - i) / (eligible - i) for i in range(int(shown_so_far[-1]) if
                                                         len(shown_so_far) else 0)]
    prefix = np.concatenate([[1.0], np.cumprod(steps)]) if steps else np.ones(1)
    return marginal, prefix[shown_so_far]


__all__ = ["inclusion_factors"]
