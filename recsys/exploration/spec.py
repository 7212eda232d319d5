"""Exploration policy specs: which policy reorders a ranked list, with which parameters.

A spec is a mapping (an experiment arm's ``changes.exploration``, a YAML file) or, on a
command line, ``NAME`` or ``NAME:key=value,key=value`` (``softmax:temperature=0.2``)::

    {policy: epsilon-greedy, epsilon: 0.1, max_explored_share: 0.2, pool: 50}

Policies (each on top of the ranked list the service would show; ``pool`` is how many of the
list's best items it draws from):

* ``none``: the ranked list as it is (every propensity 1);
* ``epsilon-greedy``: each slot, with probability ``epsilon``, shows an item drawn uniformly
  from the ranked items below the list (``k`` to ``pool``) instead of its own, while fewer
  than ``max_explored_share`` of the slots have explored;
* ``softmax``: the last ``max_explored_share`` of the slots are filled by Plackett-Luce
  sampling over the scores divided by ``temperature`` (the items not placed above them);
* ``uniform``: the same with every remaining item equally likely (a uniform logging policy);
* ``linucb``: the same slots filled by Plackett-Luce over a contextual bandit's upper
  confidence bounds (``alpha`` wide, a ridge of ``ridge``) divided by ``temperature``: the
  bandit's ranking with exactly known propensities (plain LinUCB's argmax has none, and
  Thompson sampling's have no closed form).

``epsilon-greedy`` and ``uniform`` also take ``other_categories`` (default 0): the pool then
also holds, after the list's items, the best item for the request (its query's nearest, by
exact search) of each of ``other_categories`` categories drawn uniformly, seeded per request,
from the catalogue's categories that the answer does not show
(``serving/recommendations/exploration.py``). The ranked list follows what the user did
before; when their tastes move elsewhere, only such items show them where. The drawn items
are part of the logged list; the logged propensities are exact given the ranked list, the
draw included (``category_draw``). ``pool: 1`` with ``other_categories`` explores only
outside the ranked list. OPE does not take such a target (its draws are not in the logs).

``softmax`` and ``linucb`` also take ``new_item_bonus`` (default 0): new items (from the
fresh-item index, or created less than a day ago) have their Plackett-Luce weight multiplied
by ``e ** new_item_bonus``, so the explored slots go to items the ranker has never been
trained on (optimism for the unseen; the propensities stay exact: it is still Plackett-Luce).

Guarantees: a spec with an unknown field, a field its policy does not take, or a value out
of range is a ``ConfigError`` naming the field; ``canonical()`` is the same text for equal
specs (it is what the exposure log records).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

from recsys.config import (
    Check,
    finite_non_negative_number,
    finite_positive_number,
    in_range,
    int_in_range,
    one_of,
)
from recsys.errors import ConfigError

NONE, EPSILON_GREEDY, SOFTMAX, UNIFORM, LINUCB = (
    "none", "epsilon-greedy", "softmax", "uniform", "linucb")
POLICIES = (NONE, EPSILON_GREEDY, SOFTMAX, UNIFORM, LINUCB)
MAX_POOL = 1000
MAX_OTHER_CATEGORIES = 100

# the fields each policy takes (besides ``policy``)
_TAKES: dict[str, tuple[str, ...]] = {
    NONE: (),
    EPSILON_GREEDY: ("epsilon", "max_explored_share", "pool", "other_categories"),
    SOFTMAX: ("temperature", "max_explored_share", "pool", "new_item_bonus"),
    UNIFORM: ("max_explored_share", "pool", "other_categories"),
    LINUCB: ("alpha", "ridge", "temperature", "max_explored_share", "pool", "new_item_bonus"),
}
_CHECKS: dict[str, Check] = {
    "epsilon": in_range(0.0, 1.0),
    "temperature": finite_positive_number,
    "alpha": finite_non_negative_number,
    "ridge": finite_positive_number,
    "max_explored_share": in_range(0.0, 1.0),
    "pool": int_in_range(1, MAX_POOL),
    "new_item_bonus": finite_non_negative_number,
    "other_categories": int_in_range(0, MAX_OTHER_CATEGORIES),
}
_INTEGERS = ("pool", "other_categories")
# fields left out of ``canonical`` at their default (specs logged before they existed)
_OMITTED_AT_DEFAULT = {"new_item_bonus": 0.0, "other_categories": 0}


@dataclass(frozen=True)
class PolicySpec:
    """One exploration policy and its parameters (fields a policy does not take keep their
    defaults and are left out of ``canonical``)."""

    policy: str = NONE
    epsilon: float = 0.1
    temperature: float = 1.0
    alpha: float = 1.0
    ridge: float = 1.0
    max_explored_share: float = 0.2
    pool: int = 50
    new_item_bonus: float = 0.0
    other_categories: int = 0

    @property
    def explores(self) -> bool:
        """False when the policy always shows the ranked list (``none``, or nothing to
        explore with)."""
        if self.policy == NONE or self.max_explored_share == 0:
            return False
        return not (self.policy == EPSILON_GREEDY and self.epsilon == 0)

    def params(self) -> dict[str, Any]:
        """The fields this policy takes, with their values (``new_item_bonus`` and
        ``other_categories`` only when set)."""
        return {name: getattr(self, name) for name in _TAKES[self.policy]
                if _OMITTED_AT_DEFAULT.get(name, object()) != getattr(self, name)}

    def canonical(self) -> str:
        """The spec as compact JSON with sorted keys (equal specs, equal text)."""
        return json.dumps({"policy": self.policy, **self.params()}, sort_keys=True,
                          separators=(",", ":"))

    def explorable_slots(self, k: int) -> int:
        """How many of ``k`` slots the policy may change: ``floor(max_explored_share * k)``
        (a share of 1 is every slot)."""
        if not self.explores:
            return 0
        return min(k, int(math.floor(self.max_explored_share * k + 1e-9)))


def parse_policy(raw: Any, where: str = "exploration") -> PolicySpec:
    """A ``PolicySpec`` from a mapping, a policy name, or ``NAME:key=value,...``."""
    if isinstance(raw, str):
        raw = _from_text(raw, where)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a policy name or a mapping with 'policy', got "
                          f"{raw!r}")
    name = raw.get("policy", NONE)
    one_of(POLICIES)(f"{where}.policy", name)
    known = {f.name for f in fields(PolicySpec)}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{where}.{key}: unknown field (a policy spec takes policy, "
                              f"{', '.join(sorted(known - {'policy'}))})")
        if key != "policy" and key not in _TAKES[name]:
            raise ConfigError(f"{where}.{key}: policy {name!r} does not take it (it takes "
                              f"{', '.join(_TAKES[name]) or 'nothing'})")
    values = {}
    for key in _TAKES[name]:
        if key in raw:
            value = raw[key]
            _CHECKS[key](f"{where}.{key}", value)
            values[key] = int(value) if key in _INTEGERS else float(value)
    return PolicySpec(name, **values)


@functools.lru_cache(maxsize=256)
def logged_policy(canonical: str) -> PolicySpec:
    """The spec a log records as ``canonical()`` text (parsed once per distinct text: the
    specs are few and immutable)."""
    return parse_policy(json.loads(canonical), "logged policy")


def _from_text(text: str, where: str) -> dict[str, Any]:
    name, _, rest = text.strip().partition(":")
    raw: dict[str, Any] = {"policy": name.strip()}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise ConfigError(f"{where}: {part!r} is not key=value (in {text!r})")
        try:
            raw[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            raise ConfigError(f"{where}.{key.strip()} must be a number, got {value!r}") \
                from None
    return raw


__all__ = ["PolicySpec", "parse_policy", "logged_policy", "POLICIES", "NONE",
           "EPSILON_GREEDY", "SOFTMAX", "UNIFORM", "LINUCB", "MAX_POOL",
           "MAX_OTHER_CATEGORIES"]
