"""Typed configuration of the recommendation service (`recsys api`), loaded once at start.

A YAML file may hold any of the fields below at the top level, a ``rules`` section
(:class:`~serving.recommendations.rules.RulesConfig`) and a ``stream`` section (the event
stream, :class:`~recsys.stream.config.StreamConfig`); command-line flags override the file.
Every bad value is a ``ConfigError`` naming the field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from recsys.errors import ConfigError
from serving.recommendations.rules import RulesConfig
from trainer.config import config_section, read_yaml_mapping


@dataclass(frozen=True)
class ServiceConfig:
    """Attributes:
        repo: the feature repository profile directory (Feast online store).
        model_base_path: where `recsys export` wrote retrieval, item_tower and ranker.
        model_server: ``host:port`` of the model server's gRPC API; "" = models in process.
        popular_lists: the file `recsys popular build` wrote ("" = MODEL_BASE_PATH/popular.json).
        catalogue: directory of the item catalogue table ("" = the repository's data/).
        request_deadline_ms: budget of one request; what is left when a stage would start
            decides whether it runs.
        features_timeout_ms, retrieval_timeout_ms, ranking_timeout_ms: budget per dependency.
        failure_threshold, reset_timeout_s: circuit breakers (consecutive failures to open,
            seconds before a trial call).
        user_cache_ttl_s, item_cache_ttl_s, cache_entries: TTL caches of user features and
            embeddings, and of item features.
        default_k, max_k: items returned when the request gives no ``k``, and the most allowed.
        trending_candidates, cold_start_candidates, fresh_candidates: extra candidates merged
            with retrieval's (fresh: items from the stream's fresh-item index).
        max_history: recent items read from the session (and excluded as consumed).
        max_in_flight: requests allowed in the personalised pipeline at once; the rest are
            answered from the popular lists at once (tier segment-popular or global-popular,
            reason "overload"), so overload is shed instead of queueing until every stage
            misses its budget and the circuit breakers open on healthy dependencies.
        workers: threads running dependency calls.
    """

    repo: Path = Path("feature_repo")
    model_base_path: Path = Path("models")
    model_server: str = ""
    popular_lists: str = ""
    catalogue: str = ""
    request_deadline_ms: float = 250.0
    features_timeout_ms: float = 60.0
    retrieval_timeout_ms: float = 80.0
    ranking_timeout_ms: float = 100.0
    failure_threshold: int = 5
    reset_timeout_s: float = 5.0
    user_cache_ttl_s: float = 2.0
    item_cache_ttl_s: float = 60.0
    cache_entries: int = 100_000
    default_k: int = 10
    max_k: int = 100
    trending_candidates: int = 20
    fresh_candidates: int = 20
    cold_start_candidates: int = 50
    max_history: int = 50
    max_in_flight: int = 4
    workers: int = 16
    rules: RulesConfig = field(default_factory=RulesConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "repo", Path(self.repo))
        object.__setattr__(self, "model_base_path", Path(self.model_base_path))
        for name in ("request_deadline_ms", "features_timeout_ms", "retrieval_timeout_ms",
                     "ranking_timeout_ms", "reset_timeout_s", "user_cache_ttl_s",
                     "item_cache_ttl_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"{name} must be a number > 0, got {value!r}")
        for name in ("failure_threshold", "cache_entries", "default_k", "max_k",
                     "trending_candidates", "cold_start_candidates", "fresh_candidates",
                     "max_history",
                     "max_in_flight", "workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.default_k > self.max_k:
            raise ConfigError(f"default_k ({self.default_k}) must be <= max_k ({self.max_k})")
        if self.model_server and (":" not in self.model_server
                                  or not self.model_server.rsplit(":", 1)[1].isdigit()):
            raise ConfigError(f"model_server must be host:port, got {self.model_server!r}")

    @property
    def popular_lists_path(self) -> Path:
        return Path(self.popular_lists) if self.popular_lists else (
            self.model_base_path / "popular.json")

    @property
    def catalogue_dir(self) -> Path:
        return Path(self.catalogue) if self.catalogue else self._data_dir()

    def _data_dir(self) -> Path:
        """data/ of the repository (the production profile lives in repo/production)."""
        for candidate in (self.repo / "data", self.repo.parent / "data"):
            if (candidate / "item_catalogue").is_dir():
                return candidate
        return self.repo / "data"

    def to_dict(self) -> dict[str, Any]:
        raw = dataclasses.asdict(self)
        raw["repo"], raw["model_base_path"] = str(self.repo), str(self.model_base_path)
        return raw


def load_service_config(path: Path | None = None,
                        overrides: Mapping[str, Any] | None = None) -> ServiceConfig:
    """Defaults, then the YAML file at ``path``, then ``overrides`` (None values ignored)."""
    raw = read_yaml_mapping(path, "of service settings") if path is not None else {}
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    rules = raw.pop("rules", {})
    raw.pop("stream", None)  # the event stream's section: recsys.stream.config reads it
    for key in ("repo", "model_base_path"):
        if key in raw and not isinstance(raw[key], (str, Path)):
            raise ConfigError(f"{key} must be a path, got {raw[key]!r}")
    if "repo" in raw:
        raw["repo"] = Path(raw["repo"])
    if "model_base_path" in raw:
        raw["model_base_path"] = Path(raw["model_base_path"])
    cfg = config_section(ServiceConfig, raw, "service")
    return dataclasses.replace(cfg, rules=config_section(RulesConfig, rules, "rules"))


__all__ = ["ServiceConfig", "load_service_config"]
