"""Which arm of which experiment a request's user is in.

For a user, under definitions ``Experiments``:

1. ``unit(holdout.salt, user) < holdout.share``: the user is in the global holdout and in no
   experiment (every baseline);
2. otherwise, per layer, ``unit("layer:" + layer, user)`` falls in at most one experiment's
   slice ``[traffic_offset, traffic_offset + traffic)``: the user is in that experiment when
   it is running and its targeting takes the request;
3. the arm: ``unit(experiment.salt, user)`` against the arms' cumulative weights (each arm's
   share is its weight over their sum), in the file's order.

``unit`` is :func:`recsys.experiments.hashing.unit_interval` with the file's
``hash_version``. Guarantees: sticky (the same user, definitions, context and time always
get the same arms: nothing random but the hash); experiments of one layer never share a
user; an experiment's arms split its users by weight; changing one experiment's slice or
arms moves no user of another layer.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Mapping

from recsys.experiments.definitions import (
    INTERLEAVED_ARM,
    ArmChanges,
    Experiment,
    Experiments,
)
from recsys.experiments.hashing import unit_interval


@dataclass(frozen=True)
class Assignment:
    """The arms of one request (experiment name -> arm name) and what they change."""

    arms: dict[str, str] = field(default_factory=dict)
    holdout: bool = False
    changes: tuple[ArmChanges, ...] = ()


class Assigner:
    """Assignments under one set of definitions (built once per definitions file)."""

    def __init__(self, definitions: Experiments):
        self.definitions = definitions
        self._layers: dict[str, list[Experiment]] = {}
        for experiment in definitions.experiments:
            self._layers.setdefault(experiment.layer, []).append(experiment)
        self._bounds = {e.name: list(accumulate(a.weight for a in e.arms))
                        for e in definitions.experiments}

    def unit(self, salt: str, user_id: str) -> float:
        return unit_interval(salt, user_id, self.definitions.hash_version)

    def arm_of(self, experiment: Experiment, user_id: str) -> str:
        """The arm ``user_id`` gets when in ``experiment`` (whatever its slice and targeting)."""
        bounds = self._bounds[experiment.name]
        point = self.unit(experiment.salt, user_id) * bounds[-1]
        return experiment.arms[min(bisect_right(bounds, point), len(bounds) - 1)].name

    def interleaving(self, assignment: Assignment) -> Experiment | None:
        """The interleaving experiment whose both arms this request is to show, if any."""
        for name, arm in assignment.arms.items():
            if arm == INTERLEAVED_ARM:
                return self.definitions.by_name()[name]
        return None

    def check_forced(self, forced: Mapping[str, str]) -> None:
        """Raise ValueError naming an experiment or arm of ``forced`` that is not defined."""
        experiments = self.definitions.by_name()
        for name, arm in forced.items():
            if name not in experiments:
                raise ValueError(f"no experiment {name!r} (running: {sorted(experiments)})")
            arms = [a.name for a in experiments[name].arms]
            if arm not in arms:
                raise ValueError(f"experiment {name!r} has no arm {arm!r} (arms: {arms})")

    def assign(self, user_id: str, context: Mapping[str, str | None], now_s: float,
               returning: bool | None = None,
               forced: Mapping[str, str] | None = None) -> Assignment:
        """The user's arms for a request with ``context`` (country, device, language) at
        ``now_s``; ``returning``: whether the user has a history (None: unknown). ``forced``
        (experiment -> arm, checked with ``check_forced``) overrides the hash: the request
        gets those arms, replacing any other experiment of their layers; its other layers
        keep their hashed arms (a user of the global holdout gets only the forced ones)."""
        if forced:
            return self._forced(self.assign(user_id, context, now_s, returning), forced)
        holdout = self.definitions.holdout
        if holdout.share > 0 and self.unit(holdout.salt, user_id) < holdout.share:
            return Assignment(holdout=True)
        arms, changes = {}, []
        for layer, experiments in self._layers.items():
            point = self.unit(f"layer:{layer}", user_id)
            for experiment in experiments:
                start = experiment.traffic_offset
                if start <= point < start + experiment.traffic:
                    if experiment.running(now_s) and experiment.targeting.matches(context,
                                                                                  returning):
                        if experiment.interleaved:  # both arms, drafted by the service
                            arms[experiment.name] = INTERLEAVED_ARM
                            break
                        arm = self.arm_of(experiment, user_id)
                        arms[experiment.name] = arm
                        changes.append(next(a.changes for a in experiment.arms
                                            if a.name == arm))
                    break
        return Assignment(arms, False, tuple(changes))

    def _forced(self, assignment: Assignment, forced: Mapping[str, str]) -> Assignment:
        experiments = self.definitions.by_name()
        layers = {experiments[name].layer for name in forced}
        kept = {name: arm for name, arm in assignment.arms.items()
                if experiments[name].layer not in layers}
        arms = {**kept, **forced}
        changes = tuple(next(a.changes for a in experiments[name].arms if a.name == arm)
                        for name, arm in arms.items() if arm != INTERLEAVED_ARM)
        return Assignment(arms, False, changes)


__all__ = ["Assignment", "Assigner"]
