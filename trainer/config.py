"""Typed configuration of the two-tower retrieval model and of its training run.

Every value is checked on construction; a bad one raises :class:`~recsys.errors.ConfigError`
naming the field, the value and what is allowed. Configs round-trip through plain dicts
(``to_dict`` / ``from_dict``) so a model directory records exactly what trained it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from recsys.errors import ConfigError

USER_NUMERIC_FEATURES = (
    "user_engagements_7d", "user_engagements_30d", "user_lifetime_engagements",
    "user_mean_rating_30d", "user_ctr_30d", "user_avg_watch_time_s_30d",
    "user_sessions_per_day_7d", "user_days_since_last_active",
)
USER_CATEGORICAL_FEATURES = (
    "user_country", "user_language", "user_device", "user_age_bucket", "user_top_language_30d",
)
CONTEXT_CATEGORICAL_FEATURES = ("device", "country", "language")
STRATEGIES = ("default", "mirrored", "multi_worker_mirrored")


def _check(condition: bool, name: str, value: Any, allowed: str) -> None:
    if not condition:
        raise ConfigError(f"{name} must be {allowed}, got {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_number(obj: Any, name: str, test, allowed: str) -> None:
    value = getattr(obj, name)
    _check(_is_number(value) and test(value), name, value, allowed)


@dataclass(frozen=True)
class RetrievalModelConfig:
    """Shape of the two towers.

    Attributes:
        embedding_dim: size of the (L2-normalised) query and candidate embeddings.
        id_embedding_dim: size of the user, item and history id embeddings.
        feature_embedding_dim: size of category, tag, language and context embeddings.
        hidden_units: dense layers of each tower before the output projection.
        history_length: how many recent items the query tower reads (most recent first).
        recency_decay: weight of the i-th most recent item in the recency pooling is
            ``recency_decay ** i``; the tower also takes the plain mean.
        max_tags: tags per item beyond this are ignored.
        user_numeric_features, user_categorical_features: Feast user features the query tower
            reads (missing values are allowed and learned as such).
        temperature: logits are cosine similarities divided by this.
        id_dropout: share of training examples whose user id and item id are replaced by the
            out-of-vocabulary id, so unseen users and items get trained embeddings.
        num_random_negatives: extra uniformly sampled catalogue items per batch, added to the
            in-batch negatives (mixed negative sampling); 0 = in-batch only.
        num_hard_negatives: keep only the hardest negatives per query in the loss (None = all).
    """

    embedding_dim: int = 64
    id_embedding_dim: int = 64
    feature_embedding_dim: int = 16
    hidden_units: tuple[int, ...] = (256,)
    history_length: int = 50
    recency_decay: float = 0.9
    max_tags: int = 10
    user_numeric_features: tuple[str, ...] = USER_NUMERIC_FEATURES
    user_categorical_features: tuple[str, ...] = USER_CATEGORICAL_FEATURES
    temperature: float = 0.05
    id_dropout: float = 0.05
    num_random_negatives: int = 0
    num_hard_negatives: int | None = None

    def __post_init__(self) -> None:
        for name in ("embedding_dim", "id_embedding_dim", "feature_embedding_dim",
                     "history_length", "max_tags"):
            value = getattr(self, name)
            _check(_is_int(value) and value > 0, name, value, "a positive integer")
        _check(isinstance(self.hidden_units, tuple)
               and all(_is_int(u) and u > 0 for u in self.hidden_units), "hidden_units",
               self.hidden_units, "a list of positive integers")
        _check_number(self, "recency_decay", lambda v: 0.0 < v <= 1.0, "a number in (0, 1]")
        _check_number(self, "temperature", lambda v: v > 0.0, "a number > 0")
        _check_number(self, "id_dropout", lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")
        _check(_is_int(self.num_random_negatives) and self.num_random_negatives >= 0,
               "num_random_negatives", self.num_random_negatives, "an integer >= 0")
        _check(self.num_hard_negatives is None
               or (_is_int(self.num_hard_negatives) and self.num_hard_negatives > 0),
               "num_hard_negatives", self.num_hard_negatives, "None or an integer > 0")
        for name in ("user_numeric_features", "user_categorical_features"):
            names = getattr(self, name)
            _check(isinstance(names, tuple) and all(isinstance(n, str) for n in names), name,
                   names, "a list of feature names")
        from recsys.features.tables import USER_FEATURES, USER_PROFILE

        known = set(USER_FEATURES.feature_names) | set(USER_PROFILE.feature_names)
        for name in (*self.user_numeric_features, *self.user_categorical_features):
            _check(name in known, "user feature", name,
                   f"one of the Feast user features ({', '.join(sorted(known))})")


@dataclass(frozen=True)
class TrainConfig:
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

    epochs: int = 8
    batch_size: int = 1024
    learning_rate: float = 0.003
    seed: int = 42
    strategy: str = "default"
    checkpoint_every_epochs: int = 1
    max_checkpoints: int = 3

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "checkpoint_every_epochs", "max_checkpoints"):
            value = getattr(self, name)
            _check(_is_int(value) and value > 0, name, value, "a positive integer")
        _check_number(self, "learning_rate", lambda v: v > 0.0, "a number > 0")
        _check(_is_int(self.seed) and self.seed >= 0, "seed", self.seed, "an integer >= 0")
        _check(self.strategy in STRATEGIES, "strategy", self.strategy,
               f"one of {', '.join(STRATEGIES)}")


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
    for key, value in raw.items():
        default = getattr(kind(), key)
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


def load_config(path: Path | None = None,
                overrides: Mapping[str, Mapping[str, Any]] | None = None) -> RetrievalConfig:
    """The defaults, updated by the YAML file at ``path`` (sections ``model`` and ``train``),
    then by ``overrides`` (e.g. command-line flags; None values are ignored)."""
    raw: dict[str, dict[str, Any]] = {"model": {}, "train": {}}
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


__all__ = ["RetrievalModelConfig", "TrainConfig", "RetrievalConfig", "STRATEGIES", "load_config",
           "read_yaml_mapping", "config_section",
           "USER_NUMERIC_FEATURES", "USER_CATEGORICAL_FEATURES", "CONTEXT_CATEGORICAL_FEATURES"]
