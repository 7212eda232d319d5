"""Experiment definitions: what a YAML file of experiments holds, checked as a whole.

A file::

    hash_version: v1                  # recsys.experiments.hashing
    holdout: {share: 0.05, salt: global-holdout}   # sees only the baselines
    experiments:
      - name: ranker-v2
        salt: ranker-v2-2026-12       # default: the name
        layer: ranking                # experiments of one layer never share a user
        traffic: 0.5                  # the share of the layer's users it takes
        traffic_offset: 0.0           # where its slice starts (default: after the previous
                                      # experiment's of the layer, in file order)
        baseline: control             # default: the first arm
        arms:
          - {name: control, weight: 1}
          - {name: treatment, weight: 1, changes: {model_label: canary}}
        targeting: {countries: [US, DE], devices: [], languages: [], users: all}
        start: 2026-12-01T00:00:00Z   # optional, timezone required
        stop: 2026-12-15T00:00:00Z

What an arm may change (``ArmChanges``): the model version label it is served from (the
model server's labels, e.g. ``stable`` / ``canary``), the ranker's fusion weight, rules (the
service checks their names), candidate counts, how far the pipeline goes (``full``,
``retrieval`` order without the ranker, ``popular`` lists only) and the exploration policy
on the served list (``exploration``: a policy name, ``NAME:key=value,...`` or a mapping, see
``recsys.exploration.spec``).

Guarantees: every problem is a ``ConfigError`` naming the field by its path
(``experiments[1] (ranker-v2).arms[0].weight must be a number > 0, got -1``); conflicts are
refused naming both experiments: two of one name, slices of one layer that overlap or pass
1.0, and two layers changing the same setting (a user in both would get two values).
Definitions are immutable once loaded.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from recsys.config import (
    Check,
    finite_non_negative_number,
    finite_positive_number,
    in_range,
    non_empty_text,
    one_of,
    positive_int,
    read_yaml_mapping,
    text,
)
from recsys.errors import ConfigError
from recsys.experiments.hashing import HASH_VERSIONS
from recsys.exploration.spec import PolicySpec, parse_policy

PIPELINES = ("full", "retrieval", "popular")
INTERLEAVING = "interleaving"
METHODS = ("ab", INTERLEAVING)
INTERLEAVED_ARM = "interleaved"  # the arm an interleaving experiment's requests are in
USER_KINDS = ("all", "new", "returning")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
name_text = Check(lambda v: isinstance(v, str) and bool(_NAME.match(v)),
                  "a name of lower-case letters, digits, '_', '.' or '-' (at most 64, "
                  "starting with a letter or digit)")
salt_text = Check(lambda v: isinstance(v, str) and bool(v) and "\n" not in v,
                  "a non-empty string without a newline")


@dataclass(frozen=True)
class ArmChanges:
    """What an arm changes in the service; None (or "") leaves the service's own setting."""

    model_label: str = ""
    retrieval_weight: float | None = None
    rules: Mapping[str, Any] = field(default_factory=dict)
    retrieval_candidates: int | None = None
    trending_candidates: int | None = None
    pipeline: str = "full"
    exploration: PolicySpec | None = None  # None: the service's own policy

    def changed(self) -> tuple[str, ...]:
        """The names of the settings this arm changes (rules by their own name)."""
        default = ArmChanges()
        names = [f.name for f in fields(self)
                 if f.name != "rules" and getattr(self, f.name) != getattr(default, f.name)]
        return tuple(names) + tuple(f"rules.{name}" for name in self.rules)


@dataclass(frozen=True)
class Arm:
    name: str
    weight: float
    changes: ArmChanges = field(default_factory=ArmChanges)


@dataclass(frozen=True)
class Targeting:
    """Which requests an experiment takes: empty lists take every value; ``users`` is
    ``all``, ``new`` (no history) or ``returning``."""

    countries: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    users: str = "all"

    def matches(self, context: Mapping[str, str | None], returning: bool | None) -> bool:
        """True when the request's context and kind of user are targeted (a user whose kind is
        unknown, ``returning`` None, is targeted only by ``all``)."""
        for values, key in ((self.countries, "country"), (self.devices, "device"),
                            (self.languages, "language")):
            if values and context.get(key) not in values:
                return False
        if self.users == "all":
            return True
        return returning is not None and returning == (self.users == "returning")


@dataclass(frozen=True)
class Experiment:
    name: str
    salt: str
    layer: str
    traffic: float
    traffic_offset: float
    arms: tuple[Arm, ...]
    baseline: str
    targeting: Targeting = field(default_factory=Targeting)
    start: dt.datetime | None = None
    stop: dt.datetime | None = None
    description: str = ""
    method: str = "ab"  # or "interleaving": every request shows both arms, team-drafted

    @property
    def interleaved(self) -> bool:
        return self.method == INTERLEAVING

    def running(self, now_s: float) -> bool:
        return ((self.start is None or self.start.timestamp() <= now_s)
                and (self.stop is None or now_s < self.stop.timestamp()))

    def changed(self) -> set[str]:
        return {name for arm in self.arms for name in arm.changes.changed()}


@dataclass(frozen=True)
class Holdout:
    """A share of all users that sees only the baselines (no experiment at all)."""

    share: float = 0.0
    salt: str = "global-holdout"


@dataclass(frozen=True)
class Experiments:
    hash_version: str = "v1"
    holdout: Holdout = field(default_factory=Holdout)
    experiments: tuple[Experiment, ...] = ()

    def by_name(self) -> dict[str, Experiment]:
        return {e.name: e for e in self.experiments}


def load_experiments(path: Path) -> Experiments:
    """The definitions in the YAML file at ``path`` (ConfigError naming the file and field)."""
    raw = read_yaml_mapping(path, "of experiment definitions")
    try:
        return parse_experiments(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def parse_experiments(raw: Mapping[str, Any]) -> Experiments:
    """Definitions from a mapping such as a loaded YAML file (see the module guarantees)."""
    _known(raw, ("hash_version", "holdout", "experiments"), "the file")
    version = raw.get("hash_version", "v1")
    one_of(HASH_VERSIONS)("hash_version", version)
    holdout_raw = raw.get("holdout") or {}
    _mapping(holdout_raw, "holdout")
    _known(holdout_raw, ("share", "salt"), "holdout")
    holdout = Holdout(**holdout_raw)
    in_range(0.0, 1.0, high_open=True)("holdout.share", holdout.share)
    salt_text("holdout.salt", holdout.salt)
    listed = raw.get("experiments") or []
    if not isinstance(listed, list):
        raise ConfigError(f"experiments must be a list, got {listed!r}")
    experiments, ends = [], {}
    for n, entry in enumerate(listed):
        experiment = _experiment(entry, n, ends)
        experiments.append(experiment)
    _check_conflicts(experiments)
    return Experiments(version, holdout, tuple(experiments))


def _experiment(entry: Any, n: int, ends: dict[str, float]) -> Experiment:
    where = f"experiments[{n}]"
    _mapping(entry, where)
    if isinstance(entry.get("name"), str):
        where = f"{where} ({entry['name']})"
    _known(entry, ("name", "salt", "layer", "traffic", "traffic_offset", "arms", "baseline",
                   "targeting", "start", "stop", "description", "method"), where)
    if "name" not in entry:
        raise ConfigError(f"{where}.name is required")
    name = entry["name"]
    name_text(f"{where}.name", name)
    salt = entry.get("salt", name)
    salt_text(f"{where}.salt", salt)
    layer = entry.get("layer", "default")
    name_text(f"{where}.layer", layer)
    traffic = entry.get("traffic", 1.0)
    in_range(0.0, 1.0, low_open=True)(f"{where}.traffic", traffic)
    offset = entry.get("traffic_offset", ends.get(layer, 0.0))
    in_range(0.0, 1.0, high_open=True)(f"{where}.traffic_offset", offset)
    ends[layer] = offset + traffic
    arms_raw = entry.get("arms")
    if not isinstance(arms_raw, list) or len(arms_raw) < 2:
        raise ConfigError(f"{where}.arms must be a list of at least 2 arms, got {arms_raw!r}")
    arms = tuple(_arm(a, f"{where}.arms[{i}]") for i, a in enumerate(arms_raw))
    names = [a.name for a in arms]
    twice = sorted({a for a in names if names.count(a) > 1})
    if twice:
        raise ConfigError(f"{where}.arms: arm name(s) {', '.join(twice)} used twice")
    baseline = entry.get("baseline", names[0])
    one_of(names)(f"{where}.baseline", baseline)
    targeting = _targeting(entry.get("targeting") or {}, f"{where}.targeting")
    start = _time(entry.get("start"), f"{where}.start")
    stop = _time(entry.get("stop"), f"{where}.stop")
    if start is not None and stop is not None and stop <= start:
        raise ConfigError(f"{where}.stop ({stop.isoformat()}) must be after {where}.start "
                          f"({start.isoformat()})")
    description = entry.get("description", "")
    text(f"{where}.description", description)
    method = entry.get("method", "ab")
    one_of(METHODS)(f"{where}.method", method)
    if method == INTERLEAVING and len(arms) != 2:
        raise ConfigError(f"{where}.arms: an interleaving experiment compares exactly 2 arms, "
                          f"got {len(arms)}")
    if method == INTERLEAVING:
        for i, arm in enumerate(arms):
            if arm.changes.exploration is not None:
                raise ConfigError(
                    f"{where}.arms[{i}] ({arm.name}).changes.exploration: an interleaving "
                    "experiment's arms cannot explore (the interleaved list's propensities "
                    "would be unknown); compare exploration in an A/B experiment")
    return Experiment(name, salt, layer, float(traffic), float(offset), arms, baseline,
                      targeting, start, stop, description, method)


def _arm(raw: Any, where: str) -> Arm:
    _mapping(raw, where)
    if isinstance(raw.get("name"), str):
        where = f"{where} ({raw['name']})"
    _known(raw, ("name", "weight", "changes"), where)
    name = raw.get("name")
    name_text(f"{where}.name", name)
    weight = raw.get("weight", 1.0)
    finite_positive_number(f"{where}.weight", weight)
    changes = raw.get("changes") or {}
    _mapping(changes, f"{where}.changes")
    _known(changes, tuple(f.name for f in fields(ArmChanges)), f"{where}.changes")
    at = f"{where}.changes"
    checks = {"model_label": text, "pipeline": one_of(PIPELINES),
              "retrieval_weight": finite_non_negative_number,
              "retrieval_candidates": positive_int, "trending_candidates": positive_int}
    for key, check in checks.items():
        if changes.get(key) is not None:
            check(f"{at}.{key}", changes[key])
    rules = changes.get("rules") or {}
    _mapping(rules, f"{at}.rules")
    for key in rules:
        non_empty_text(f"{at}.rules key", key)
    values = {k: v for k, v in changes.items() if k != "rules" and v is not None}
    if "exploration" in values:
        values["exploration"] = parse_policy(values["exploration"], f"{at}.exploration")
    return Arm(name, float(weight), ArmChanges(**values, rules=dict(rules)))


def _targeting(raw: Any, where: str) -> Targeting:
    _mapping(raw, where)
    _known(raw, ("countries", "devices", "languages", "users"), where)
    lists = {}
    for key in ("countries", "devices", "languages"):
        value = raw.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{where}.{key} must be a list of non-empty strings, got "
                              f"{value!r}")
        lists[key] = tuple(value)
    users = raw.get("users", "all")
    one_of(USER_KINDS)(f"{where}.users", users)
    return Targeting(**lists, users=users)


def _time(value: Any, where: str) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"{where} must be an ISO 8601 time, got {value!r}") from None
    if not isinstance(value, dt.datetime):
        raise ConfigError(f"{where} must be an ISO 8601 time, got {value!r}")
    if value.tzinfo is None:
        raise ConfigError(f"{where} must name its time zone (e.g. 2026-12-01T00:00:00Z), "
                          f"got {value.isoformat()}")
    return value


def _check_conflicts(experiments: list[Experiment]) -> None:
    seen: dict[str, int] = {}
    for n, e in enumerate(experiments):
        if e.name in seen:
            raise ConfigError(f"experiments[{n}] ({e.name}): the name is already used by "
                              f"experiments[{seen[e.name]}]")
        seen[e.name] = n
    by_layer: dict[str, list[Experiment]] = {}
    for e in experiments:
        by_layer.setdefault(e.layer, []).append(e)
    for layer, members in by_layer.items():
        ordered = sorted(members, key=lambda e: e.traffic_offset)
        for before, after in zip(ordered, ordered[1:]):
            if before.traffic_offset + before.traffic > after.traffic_offset + 1e-12:
                raise ConfigError(
                    f"experiments {before.name} and {after.name} overlap in layer {layer!r}: "
                    f"[{before.traffic_offset:g}, {before.traffic_offset + before.traffic:g}) "
                    f"and [{after.traffic_offset:g}, {after.traffic_offset + after.traffic:g}); "
                    "experiments of one layer must not share users (set traffic_offset)")
        last = ordered[-1]
        if last.traffic_offset + last.traffic > 1.0 + 1e-12:
            raise ConfigError(
                f"experiment {last.name} passes the end of layer {layer!r}: its slice "
                f"[{last.traffic_offset:g}, {last.traffic_offset + last.traffic:g}) ends "
                "after 1 (lower its traffic or its traffic_offset)")
    interleaving_layers = sorted({e.layer for e in experiments if e.interleaved})
    if len(interleaving_layers) > 1:
        raise ConfigError(f"interleaving experiments are in layers {interleaving_layers}: put "
                          "them in one layer (an answer interleaves one pair of arms)")
    owners: dict[str, Experiment] = {}
    for e in experiments:
        for setting in sorted(e.changed()):
            other = owners.get(setting)
            if other is not None and other.layer != e.layer:
                raise ConfigError(
                    f"experiments {other.name} (layer {other.layer!r}) and {e.name} (layer "
                    f"{e.layer!r}) both change {setting}: a user in both layers would get two "
                    "values; put them in one layer")
            owners.setdefault(setting, e)


def _mapping(value: Any, where: str) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {value!r}")


def _known(raw: Mapping[str, Any], keys: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        raise ConfigError(f"unknown key(s) in {where}: {', '.join(map(str, unknown))}; known: "
                          f"{', '.join(keys)}")


__all__ = ["ArmChanges", "Arm", "Targeting", "Experiment", "Holdout", "Experiments",
           "load_experiments", "parse_experiments", "PIPELINES", "USER_KINDS", "METHODS",
           "INTERLEAVING", "INTERLEAVED_ARM"]
