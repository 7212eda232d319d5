"""The simulated users' true response model: how likely a user is to open an item shown in a
slot, how much of it they watch, and whether they like or skip it. The synthetic platform's
day generator and the user simulator (`recsys simulate`) both draw from it, so the simulator
knows each answer's true expected value.

* click: ``sigmoid(-3.7 + 0.9 affinity + 1.2 language match + 0.6 quality - 0.04 position
  + the user's click bias)``, ``affinity = log(taste[category] * categories + 0.05)``;
* watch fraction of the item's duration, once opened: Beta with mean
  ``sigmoid(-0.3 + 0.8 affinity + 0.7 quality + 0.5 language match)`` and concentration 4;
* like: ``sigmoid(-5 + 3.5 fraction + 0.5 affinity)``; skip: not liked and fraction < 0.2.
"""

from __future__ import annotations

import numpy as np

from recsys.data.synthetic.population import Items, Users

WATCH_CONCENTRATION = 4.0
SKIP_BELOW_FRACTION = 0.2


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def affinity(users: Users, items: Items, u: np.ndarray, item: np.ndarray,
             n_categories: int) -> np.ndarray:
    return np.log(users.taste[u, items.category[item]] * n_categories + 0.05)


def language_match(users: Users, items: Items, u: np.ndarray, item: np.ndarray) -> np.ndarray:
    return (items.language[item] == users.language[u]).astype(np.float64)


def click_probability(users: Users, items: Items, u: np.ndarray, item: np.ndarray,
                      position: np.ndarray, n_categories: int) -> np.ndarray:
    """P(user ``u`` opens ``item`` shown at 0-based ``position``), elementwise."""
    quality = items.quality[item].astype(np.float64)
    logit = (-3.7 + 0.9 * affinity(users, items, u, item, n_categories)
             + 1.2 * language_match(users, items, u, item) + 0.6 * quality - 0.04 * position
             + users.click_bias[u])
    return sigmoid(logit)


def mean_watch_fraction(users: Users, items: Items, u: np.ndarray, item: np.ndarray,
                        n_categories: int) -> np.ndarray:
    quality = items.quality[item].astype(np.float64)
    return sigmoid(-0.3 + 0.8 * affinity(users, items, u, item, n_categories) + 0.7 * quality
                   + 0.5 * language_match(users, items, u, item))


def watch_fraction(mean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.beta(WATCH_CONCENTRATION * mean + 1e-3, WATCH_CONCENTRATION * (1 - mean) + 1e-3)


def like_probability(fraction: np.ndarray, item_affinity: np.ndarray) -> np.ndarray:
    return sigmoid(-5.0 + 3.5 * fraction + 0.5 * item_affinity)


__all__ = ["sigmoid", "affinity", "language_match", "click_probability",
           "mean_watch_fraction", "watch_fraction", "like_probability",
           "SKIP_BELOW_FRACTION"]
