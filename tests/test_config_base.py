"""recsys.config: the one typed-config base; every config class of the project stands on it."""

from __future__ import annotations

import importlib
import math
import pkgutil
from dataclasses import dataclass, is_dataclass

import pytest

from recsys.config import (Config, config_section, in_range, non_empty_text, one_of, optional,
                           positive_int, probability, setting, text, tuple_of)
from recsys.errors import ConfigError


@dataclass(frozen=True)
class Example(Config):
    count: int = setting(3, positive_int)
    share: float = setting(0.5, probability)
    mode: str = setting("a", one_of(("a", "b")))
    name: str = setting("x", text & non_empty_text)
    limit: int | None = setting(None, optional(positive_int))
    widths: tuple[int, ...] = setting((1, 2), tuple_of(positive_int))
    low: float = 0.0
    high: float = 1.0

    def check_together(self) -> None:
        if self.low > self.high:
            raise ConfigError(f"low ({self.low}) must be <= high ({self.high})")


@pytest.mark.parametrize("changes, message", [
    ({"count": 0}, "count must be a positive integer, got 0"),
    ({"count": True}, "count must be a positive integer, got True"),
    ({"count": 2.0}, "count must be a positive integer, got 2.0"),
    ({"share": 1.5}, "share must be a number in [0, 1], got 1.5"),
    ({"share": math.nan}, "share must be a number in [0, 1], got nan"),
    ({"mode": "c"}, "mode must be one of ['a', 'b'], got 'c'"),
    ({"name": 3}, "name must be a string, got 3"),
    ({"name": "  "}, "name must be a non-empty string, got '  '"),
    ({"limit": 0}, "limit must be None or a positive integer, got 0"),
    ({"widths": (1, -1)}, "widths must be a list of positive integers, got (1, -1)"),
    ({"low": 2.0}, "low (2.0) must be <= high (1.0)"),
])
def test_a_bad_value_is_refused_naming_the_field_and_the_value(changes, message):
    with pytest.raises(ConfigError) as info:
        Example(**changes)
    assert str(info.value) == message


def test_good_values_pass_and_round_trip_through_a_mapping():
    cfg = Example.from_dict({"count": 5, "widths": [4, 8], "share": "2.5e-1"}, "example")
    assert cfg == Example(count=5, widths=(4, 8), share=0.25)
    assert Example.from_dict(cfg.to_dict()) == cfg
    assert cfg.replace(count=6).count == 6
    with pytest.raises(ConfigError, match="count must be a positive integer"):
        cfg.replace(count=-1)


def test_unknown_keys_and_non_mappings_are_refused_by_name():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) in config section 'example': "
                                          r"colour; known: count, share"):
        Example.from_dict({"colour": "red"}, "example")
    with pytest.raises(ConfigError, match=r"config section 'example' must be a mapping, got 3"):
        config_section(Example, 3, "example")


def test_ranges_say_which_ends_are_open():
    assert in_range(0, 1, low_open=True).allowed == "a number in (0, 1]"
    assert in_range(0, 1, high_open=True).allowed == "a number in [0, 1)"


def _project_config_classes():
    import recsys
    import serving
    import trainer

    found = []
    for package in (recsys, trainer, serving):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.startswith("serving.recommendations.http") or info.name.endswith(
                    ("grpc_api", "server", "rest_api")):
                continue
            module = importlib.import_module(info.name)
            for value in vars(module).values():
                if (isinstance(value, type) and is_dataclass(value)
                        and value.__module__ == module.__name__
                        and value.__name__.endswith("Config")):
                    found.append(value)
    return found


def test_every_config_class_of_the_project_stands_on_the_base():
    classes = _project_config_classes()
    names = {c.__name__ for c in classes}
    assert {"RetrievalModelConfig", "TrainConfig", "RankerConfig", "ScannConfig",
            "StreamConfig", "ServiceConfig", "RulesConfig", "FeatureConfig",
            "SyntheticConfig"} <= names
    # RetrievalConfig is a pair of sections (model, train), each a Config
    not_based = [c.__name__ for c in classes if not issubclass(c, Config)
                 and c.__name__ != "RetrievalConfig"]
    assert not not_based, f"config classes not built on recsys.config.Config: {not_based}"
