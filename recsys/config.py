"""Typed configuration: one base for every config class of the project.

A config is a frozen dataclass that subclasses :class:`Config` and declares each checked field
with :func:`setting` and a check from this module::

    @dataclass(frozen=True)
    class TrainConfig(Config):
        epochs: int = setting(8, positive_int)
        learning_rate: float = setting(0.003, positive_number)
        strategy: str = setting("default", one_of(STRATEGIES))

Guarantees:

* Every check runs on construction, field by field in declaration order; the first bad value
  raises :class:`~recsys.errors.ConfigError` as ``"<field> must be <what is allowed>, got
  <value!r>"``. Rules that tie fields together go in :meth:`Config.check_together`, which runs
  after the field checks.
* :meth:`Config.from_dict` refuses unknown keys by name (listing the known ones), turns YAML
  lists into tuples where the default is a tuple and YAML 1.1's ``3e-3`` strings into floats
  where the default is a float; :meth:`Config.to_dict` gives the plain mapping back.
* :func:`read_yaml_mapping` reads a config file or names the file and what is wrong with it.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TypeVar

from recsys.errors import ConfigError

C = TypeVar("C", bound="Config")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


class Check:
    """A named test of one value: ``check(name, value)`` raises ConfigError unless it passes,
    saying ``"<name> must <requirement>, got <value!r>"``; the requirement is ``"be "`` +
    ``allowed`` unless ``requirement`` is given. ``a & b`` is both, each with its message."""

    def __init__(self, test: Callable[[Any], bool], allowed: str, requirement: str | None = None):
        self.test, self.allowed = test, allowed
        self.requirement = requirement or f"be {allowed}"

    def __call__(self, name: str, value: Any) -> None:
        if not self.test(value):
            raise ConfigError(f"{name} must {self.requirement}, got {value!r}")

    def __and__(self, other: Check) -> Check:
        return _Both(self, other)

    def __repr__(self) -> str:
        return f"Check({self.allowed!r})"


class _Both(Check):
    def __init__(self, first: Check, second: Check):
        super().__init__(lambda v: first.test(v) and second.test(v),
                         f"{first.allowed} and {second.allowed}")
        self.first, self.second = first, second

    def __call__(self, name: str, value: Any) -> None:
        self.first(name, value)
        self.second(name, value)


positive_int = Check(lambda v: is_int(v) and v > 0, "a positive integer")
non_negative_int = Check(lambda v: is_int(v) and v >= 0, "an integer >= 0")
positive_number = Check(lambda v: is_number(v) and v > 0, "a number > 0")
non_negative_number = Check(lambda v: is_number(v) and v >= 0, "a number >= 0")
finite_positive_number = Check(lambda v: is_finite(v) and v > 0, "a finite number > 0")
finite_non_negative_number = Check(lambda v: is_finite(v) and v >= 0, "a finite number >= 0")
non_empty_text = Check(lambda v: isinstance(v, str) and bool(v.strip()), "a non-empty string")
text = Check(lambda v: isinstance(v, str), "a string")
boolean = Check(lambda v: isinstance(v, bool), "true or false")
number = Check(is_number, "a number")


def in_range(low: float, high: float, *, low_open: bool = False,
             high_open: bool = False) -> Check:
    """A number in the interval from ``low`` to ``high``, each end open or closed."""
    def test(v: Any) -> bool:
        return is_number(v) and (low < v if low_open else low <= v) and (
            v < high if high_open else v <= high)
    return Check(test, f"a number in {'(' if low_open else '['}{low:g}, {high:g}"
                       f"{')' if high_open else ']'}")


probability = in_range(0.0, 1.0)


def int_in_range(low: int, high: int) -> Check:
    return Check(lambda v: is_int(v) and low <= v <= high, f"an integer in [{low}, {high}]")


def one_of(choices: Iterable[Any]) -> Check:
    choices = tuple(choices)
    return Check(lambda v: v in choices, f"one of {list(choices)}")


def optional(check: Check) -> Check:
    """None, or a value ``check`` accepts."""
    return Check(lambda v: v is None or check.test(v), f"None or {check.allowed}")


def tuple_of(check: Check, *, non_empty: bool = False, what: str | None = None) -> Check:
    """A list (a tuple once loaded) whose every element ``check`` accepts."""
    def test(v: Any) -> bool:
        return isinstance(v, tuple) and (bool(v) or not non_empty) and all(
            check.test(x) for x in v)
    return Check(test, what or f"a {'non-empty ' if non_empty else ''}list of "
                               f"{check.allowed.removeprefix('a ').removeprefix('an ')}s")


def subset_of(choices: Iterable[str], *, non_empty: bool = False) -> Check:
    choices = tuple(choices)
    return tuple_of(Check(lambda v: v in choices, ""), non_empty=non_empty,
                    what=f"a {'non-empty ' if non_empty else ''}subset of {list(choices)}")


def setting(default: Any = dataclasses.MISSING, check: Check | None = None, *,
            factory: Callable[[], Any] | None = None) -> Any:
    """A config field with its default and the check its value must pass."""
    metadata = {"check": check} if check is not None else {}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class Config:
    """Base of the project's config dataclasses (see the module docstring)."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            check = f.metadata.get("check")
            if check is not None:
                check(f.name, getattr(self, f.name))
        self.check_together()

    def check_together(self) -> None:
        """Rules over several fields; raise ConfigError naming them. Nothing by default."""

    @classmethod
    def from_dict(cls: type[C], raw: Any, name: str | None = None) -> C:
        """An instance from a mapping such as a YAML section (see the module guarantees)."""
        return config_section(cls, raw, name or cls.__name__)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes``, checked again."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def config_section(kind: type, raw: Any, name: str):
    """An instance of the config dataclass ``kind`` from a mapping; unknown keys and bad values
    are refused by name."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config section {name!r} must be a mapping, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(kind)}
    unknown = set(raw) - set(fields)
    if unknown:
        raise ConfigError(f"unknown key(s) in config section {name!r}: "
                          f"{', '.join(sorted(unknown))}; known: {', '.join(fields)}")
    values = {}
    defaults = kind()
    for key, value in raw.items():
        default = getattr(defaults, key)
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        elif isinstance(default, float) and isinstance(value, str):
            try:  # YAML 1.1 reads 3e-3 as a string
                value = float(value)
            except ValueError:
                pass
        values[key] = value
    try:
        return kind(**values)
    except TypeError as exc:
        raise ConfigError(f"config section {name!r}: {exc}") from exc


def read_yaml_mapping(path: Path, expected: str) -> dict[str, Any]:
    """The mapping a YAML config file holds ({} for an empty file); ConfigError naming the
    file for a missing file, invalid YAML or another kind of document."""
    import yaml

    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if loaded is not None and not isinstance(loaded, Mapping):
        raise ConfigError(f"config file {path} must hold a mapping {expected}, got "
                          f"{type(loaded).__name__}")
    return dict(loaded or {})


__all__ = ["Check", "Config", "setting", "config_section", "read_yaml_mapping", "is_int",
           "is_number", "is_finite", "positive_int", "non_negative_int", "positive_number",
           "non_negative_number", "finite_positive_number", "finite_non_negative_number",
           "non_empty_text", "text", "boolean", "number", "in_range", "int_in_range", "probability",
           "one_of", "optional", "tuple_of", "subset_of"]
