"""Checks for typed configuration: each raises ConfigError naming the field and the value."""

from __future__ import annotations

from typing import Any

from recsys.errors import ConfigError


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def positive_int(name: str, value: Any) -> None:
    if not (is_int(value) and value > 0):
        raise ConfigError(f"{name} must be an integer > 0, got {value!r}")


def positive_number(name: str, value: Any) -> None:
    if not (is_number(value) and value > 0):
        raise ConfigError(f"{name} must be a number > 0, got {value!r}")


def non_empty_text(name: str, value: Any) -> None:
    if not (isinstance(value, str) and value.strip()):
        raise ConfigError(f"{name} must be a non-empty string, got {value!r}")


__all__ = ["is_int", "is_number", "positive_int", "positive_number", "non_empty_text"]
