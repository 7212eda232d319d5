"""Typed configuration of a retrieval training run: the model's shape (the model contract's
:class:`~recsys.model_contract.retrieval_config.RetrievalModelConfig`) and how it is trained.

Every value is checked on construction; a bad one raises :class:`~recsys.errors.ConfigError`
naming the field, the value and what is allowed. Configs round-trip through plain dicts
(``to_dict`` / ``from_dict``) so a model directory records exactly what trained it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from recsys.config import (
    Config,
    config_section,
    non_negative_int,
    one_of,
    positive_int,
    positive_number,
    read_yaml_mapping,
    setting,
)
from recsys.errors import ConfigError
from recsys.model_contract.retrieval_config import RetrievalModelConfig

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored")


@dataclass(frozen=True)
class TrainConfig(Config):
    """How the model is trained.

    Attributes:
        epochs, batch_size, learning_rate: Adam on the in-batch softmax loss.
        seed: fixes initialisation, shuffling and dropout; the same seed, data and config give
            the same weights.
        strategy: ``default`` (one device), ``mirrored`` (all local devices) or
            ``multi_worker_mirrored`` (workers from the TF_CONFIG environment variable).
        checkpoint_every_epochs: a checkpoint is written after every this many epochs and at
            the end; training resumes from the latest one in the model directory.
        max_checkpoints: how many checkpoints to keep.
    """

    epochs: int = setting(8, positive_int)
    batch_size: int = setting(1024, positive_int)
    learning_rate: float = setting(0.003, positive_number)
    seed: int = setting(42, non_negative_int)
    strategy: str = setting("default", one_of(STRATEGIES))
    checkpoint_every_epochs: int = setting(1, positive_int)
    max_checkpoints: int = setting(3, positive_int)


@dataclass(frozen=True)
class RetrievalConfig:
    """The whole retrieval run: model shape and training."""

    model: RetrievalModelConfig = field(default_factory=RetrievalModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RetrievalConfig:
        """Build from a mapping such as a YAML file; unknown keys are refused by name."""
        if not isinstance(raw, Mapping):
            raise ConfigError(f"retrieval config must be a mapping, got {type(raw).__name__}")
        unknown = set(raw) - {"model", "train"}
        if unknown:
            raise ConfigError(f"unknown retrieval config section(s): {', '.join(sorted(unknown))}"
                              "; expected model, train")
        return cls(model=config_section(RetrievalModelConfig, raw.get("model", {}), "model"),
                   train=config_section(TrainConfig, raw.get("train", {}), "train"))


def load_config(path: Path | None = None,
                overrides: Mapping[str, Mapping[str, Any]] | None = None,
                defaults: Mapping[str, Mapping[str, Any]] | None = None) -> RetrievalConfig:
    """The defaults (the dataclasses', updated by ``defaults``, e.g. a workflow's own),
    updated by the YAML file at ``path`` (sections ``model`` and ``train``), then by
    ``overrides`` (e.g. command-line flags; None values are ignored)."""
    raw: dict[str, dict[str, Any]] = {"model": dict((defaults or {}).get("model", {})),
                                      "train": dict((defaults or {}).get("train", {}))}
    if path is not None:
        loaded = read_yaml_mapping(path, "with sections model and train")
        unknown = set(loaded or {}) - set(raw)
        if unknown:
            raise ConfigError(f"config file {path}: unknown section(s) "
                              f"{', '.join(sorted(unknown))}; expected model, train")
        for section, values in (loaded or {}).items():
            if not isinstance(values, Mapping):
                raise ConfigError(f"config file {path}: section {section!r} must be a mapping")
            raw[section].update(values)
    unknown = set(overrides or {}) - set(raw)
    if unknown:
        raise ConfigError(f"unknown override section(s) {', '.join(sorted(unknown))}; "
                          "expected model, train")
    for section, values in (overrides or {}).items():
        raw[section].update({k: v for k, v in values.items() if v is not None})
    return RetrievalConfig.from_dict(raw)


__all__ = ["TrainConfig", "RetrievalConfig", "STRATEGIES", "load_config"]
