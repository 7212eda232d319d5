"""Typed configuration of the recommendation service (`recsys api`), loaded once at start.

A YAML file may hold any of the fields below at the top level, a ``rules`` section
(:class:`~serving.recommendations.rules.RulesConfig`), an ``access`` section (API keys, body
and rate limits, :class:`~serving.access.policy.AccessConfig`), a ``console`` section (the
operator console, :class:`~serving.console.config.ConsoleConfig`) and a ``stream`` section
(the event stream, :class:`~recsys.stream.config.StreamConfig`); command-line flags override
the file.
Every bad value is a ``ConfigError`` naming the field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from recsys.config import (
    Check,
    Config,
    boolean,
    config_section,
    non_negative_int,
    one_of,
    positive_int,
    positive_number,
    probability,
    read_yaml_mapping,
    setting,
    text,
)
from recsys.errors import ConfigError
from recsys.exploration.spec import PolicySpec, parse_policy
from serving.access.policy import AccessConfig
from serving.console.config import ConsoleConfig
from serving.recommendations.model_targets import check_model_server
from serving.recommendations.rules import RulesConfig


def _is_policy(value: Any) -> bool:
    try:
        parse_policy(value)
    except ConfigError:
        return False
    return isinstance(value, str)


@dataclass(frozen=True)
class ServiceConfig(Config):
    """Attributes:
        repo: the feature repository profile directory (Feast online store).
        model_base_path: where `recsys export` wrote retrieval, item_tower and ranker.
        model_server: the model server's gRPC API: ``host:port``, replicas ``h1:p1,h2:p2``
            (round robin, health-checked) or ``dns:///name:port``; "" = models in process.
        popular_lists: the file `recsys popular build` wrote ("" = MODEL_BASE_PATH/popular.json).
        catalogue: directory of the item catalogue table ("" = the repository's data/).
        request_deadline_ms: budget of one request; what is left when a stage would start
            decides whether it runs.
        features_timeout_ms, retrieval_timeout_ms, ranking_timeout_ms: budget per dependency.
        failure_threshold, reset_timeout_s: circuit breakers (consecutive failures to open,
            seconds before a trial call).
        user_cache_ttl_s, item_cache_ttl_s, cache_entries: TTL caches of user features and
            embeddings, and of the item features of items outside the item table.
        item_table_refresh_s: seconds between two background re-reads of the item feature
            table (every catalogue item's online features, held in memory as columns).
        default_k, max_k: items returned when the request gives no ``k``, and the most allowed.
        trending_candidates, cold_start_candidates, fresh_candidates: extra candidates merged
            with retrieval's (fresh: items from the stream's fresh-item index).
        max_history: recent items read from the session (and excluded as consumed).
        max_in_flight: requests allowed in the personalised pipeline at once; the rest are
            answered from the popular lists at once (tier segment-popular or global-popular,
            reason "overload"), so overload is shed instead of queueing until every stage
            misses its budget and the circuit breakers open on healthy dependencies.
        workers: service processes on the one port (`recsys api --workers N`, SO_REUSEPORT):
            each has its own interpreter, models and caches, so N processes use N cores.
        dependency_threads: threads running dependency calls, per process.
        enable_batching, batching_parameters_file: models in process only: batch concurrent
            requests' calls of one signature into one model call (TF Serving's flags of the
            same names; the file is a ``BatchingParameters`` text proto, "" = the defaults
            of :class:`~serving.batching.BatchingParameters`). A model server batches by its
            own flags.
        ranker_runtime: models in process only: ``onnxruntime`` runs the ranker's ``rank``
            on ONNX Runtime when the export holds an ONNX core (string lookups in NumPy, the
            same outputs in less than half TensorFlow's time), ``tensorflow`` always in
            TensorFlow. A model server runs the ranker by its own choice.
        retrieval_runtime: models in process only: ``onnxruntime`` computes the query
            embedding on ONNX Runtime when the ScaNN export holds an ONNX query tower and
            searches the export's own ScaNN searcher with it (the same candidates in about
            half TensorFlow's time), ``tensorflow`` runs the SavedModel's ``retrieval``
            signature.
        experiments: a YAML file of experiment definitions (``recsys.experiments``; "" = no
            experiments), loaded at start (a bad file stops the service, naming the field)
            and again whenever its content changes (a bad new file is refused and logged;
            the running experiments stay). Changes are recorded in
            ``experiments_change_log`` ("" = the file's path + ``.changes.jsonl``).
        experiments_poll_s: seconds between two checks of the experiments file.
        model_config_file: models in process only: a TF Serving ``ModelServerConfig`` text
            proto (what `recsys model-server --model_config_file` reads) whose
            ``version_labels`` name versions of ``retrieval``, ``item_tower`` and ``ranker``;
            an experiment arm with ``model_label: L`` is served by a second pipeline pinned
            to L's versions (its own item index, input specs and caches). With
            ``model_server``, the labels are the model server's own.
        model_label: the version label every answer is served from unless an experiment arm
            names another ("" = the newest version; ``stable`` with the model registry,
            `recsys models promote`). Models in process: the label's versions are read from
            ``model_config_file`` at start; with ``model_server``, the server resolves the
            label at every call and the service follows it when it moves (a promotion or a
            rollback rebuilds the item index in the background).
        experiments_overrides: accept a request's ``arms`` (experiment -> arm, forced, for QA
            and the simulator's counterfactual requests); such answers are not logged as
            exposures. Off by default: a client could otherwise pick its own arm.
        client_clock: accept a request's ``now_s`` (its time in Unix seconds) and serve,
            log the exposure and sample the serving profile as of it: for simulators and
            replays that run days of traffic in minutes (``workflows.simulator``). Off by
            default: a client could otherwise back-date its exposures.
        exploration: the exploration policy of answers no experiment arm gives one to
            (``recsys.exploration.spec``: ``none``, or e.g.
            ``softmax:temperature=0.05,max_explored_share=0.3``); an arm's
            ``changes.exploration`` replaces it for the arm's users. Scores it reads are the
            rules' (the ranker's scores scaled to [0, 1] within the answer, plus the recency
            boost), so a temperature is in those units.
        bandit_poll_s: seconds between two reads of the contextual bandit's parameters from
            the stream's Redis (a background thread; requests use the last snapshot read).
        profile_sample_rate: the share of answers whose query row, query embedding and top
            retrieval score are offered to the serving profile's windows in the stream's
            Redis (``recsys.monitoring.serving_windows``; every answer's tier, sources and
            items are counted there); 0 = none.
        tensorflow_intra_op_parallelism, tensorflow_inter_op_parallelism: TensorFlow's thread
            pools in this process (TF Serving's flags of the same names; 0 = TensorFlow's
            default, a thread per core each). 1 and 1 by default: a request's model calls are
            small, and on 2 cores the ranker's call took 2.0 ms of CPU on one thread of each
            against 5.2 ms on the defaults (threads handing ops to each other); scale with
            processes (`recsys api --workers N`), not threads.
    """

    repo: Path = Path("feature_repo")
    model_base_path: Path = Path("models")
    model_server: str = setting("", text & Check(
        check_model_server, "host:port",
        "be host:port, a comma-separated list of them (replicas) or a gRPC target such as "
        "dns:///name:port"))
    popular_lists: str = ""
    catalogue: str = ""
    request_deadline_ms: float = setting(250.0, positive_number)
    features_timeout_ms: float = setting(60.0, positive_number)
    retrieval_timeout_ms: float = setting(80.0, positive_number)
    ranking_timeout_ms: float = setting(100.0, positive_number)
    failure_threshold: int = setting(5, positive_int)
    reset_timeout_s: float = setting(5.0, positive_number)
    user_cache_ttl_s: float = setting(2.0, positive_number)
    item_cache_ttl_s: float = setting(60.0, positive_number)
    cache_entries: int = setting(100_000, positive_int)
    item_table_refresh_s: float = setting(300.0, positive_number)
    default_k: int = setting(10, positive_int)
    max_k: int = setting(100, positive_int)
    trending_candidates: int = setting(20, positive_int)
    fresh_candidates: int = setting(20, positive_int)
    cold_start_candidates: int = setting(50, positive_int)
    max_history: int = setting(50, positive_int)
    max_in_flight: int = setting(4, positive_int)
    workers: int = setting(1, positive_int)
    dependency_threads: int = setting(16, positive_int)
    enable_batching: bool = setting(True, boolean)
    batching_parameters_file: str = ""
    ranker_runtime: str = setting("onnxruntime", one_of(("onnxruntime", "tensorflow")))
    retrieval_runtime: str = setting("onnxruntime", one_of(("onnxruntime", "tensorflow")))
    experiments: str = ""
    experiments_change_log: str = ""
    experiments_poll_s: float = setting(5.0, positive_number)
    experiments_overrides: bool = setting(False, boolean)
    client_clock: bool = setting(False, boolean)
    model_config_file: str = ""
    model_label: str = setting("", text)
    exploration: str = setting("none", Check(_is_policy, "a policy spec such as 'none' or "
                                                        "'softmax:temperature=0.05'"))
    bandit_poll_s: float = setting(1.0, positive_number)
    profile_sample_rate: float = setting(0.05, probability)
    tensorflow_intra_op_parallelism: int = setting(1, non_negative_int)
    tensorflow_inter_op_parallelism: int = setting(1, non_negative_int)
    rules: RulesConfig = setting(factory=RulesConfig)
    access: AccessConfig = setting(factory=AccessConfig)
    console: ConsoleConfig = setting(factory=ConsoleConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "repo", Path(self.repo))
        object.__setattr__(self, "model_base_path", Path(self.model_base_path))
        super().__post_init__()

    def check_together(self) -> None:
        if self.default_k > self.max_k:
            raise ConfigError(f"default_k ({self.default_k}) must be <= max_k ({self.max_k})")

    @property
    def exploration_policy(self) -> PolicySpec:
        return parse_policy(self.exploration)

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
    access = raw.pop("access", {})
    console = raw.pop("console", {})
    raw.pop("stream", None)  # the event stream's section: recsys.stream.config reads it
    for key in ("repo", "model_base_path"):
        if key in raw and not isinstance(raw[key], (str, Path)):
            raise ConfigError(f"{key} must be a path, got {raw[key]!r}")
    if "repo" in raw:
        raw["repo"] = Path(raw["repo"])
    if "model_base_path" in raw:
        raw["model_base_path"] = Path(raw["model_base_path"])
    cfg = config_section(ServiceConfig, raw, "service")
    return dataclasses.replace(cfg, rules=config_section(RulesConfig, rules, "rules"),
                               access=config_section(AccessConfig, access, "access"),
                               console=config_section(ConsoleConfig, console, "console"))


__all__ = ["ServiceConfig", "load_service_config"]
