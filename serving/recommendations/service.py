"""Assembling the recommendation service from a :class:`ServiceConfig`: the model client, the
model specs from the exported manifests, the item index, the popular lists and the online
feature reader.

Guarantees: a missing artifact is a ``SourceError`` naming it and the command that makes it;
the specs are read from the manifests of the versions being served, so requests are encoded
for the models that answer them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recsys.errors import ConfigError, SourceError
from serving.recommendations.config import ServiceConfig
from serving.recommendations.item_index import ItemIndex, build_item_index
from serving.recommendations.metrics import ServiceMetrics
from serving.recommendations.pipeline import ModelSpecs, Recommender

log = logging.getLogger(__name__)


@dataclass
class ServedModels:
    """The manifests of the latest version of each exported artifact."""

    retrieval: dict
    ranker: dict | None


def latest_manifest(base: Path, artifact: str, required: bool = True) -> dict | None:
    from recsys.model_contract.manifest import read_manifest
    from recsys.model_contract.versioning import versions

    found = versions(base / artifact)
    manifest = read_manifest(base / artifact / str(found[-1])) if found else None
    if manifest is None and required:
        raise SourceError(f"no exported {artifact!r} model under {base}; run `recsys export "
                          f"--model-base-path {base}` first")
    return manifest


def model_specs(models: ServedModels) -> ModelSpecs:
    from recsys.model_contract.feature_spec import query_inputs
    from recsys.model_contract.ranker_config import load_ranker_config
    from recsys.model_contract.ranker_inputs import ranker_inputs
    from recsys.model_contract.retrieval_config import model_config_of

    retrieval = model_config_of(models.retrieval)
    if models.ranker is None:
        return ModelSpecs(query=query_inputs(retrieval), ranker=None)
    ranker_cfg = load_ranker_config(None, models.ranker["model_config"])
    return ModelSpecs(query=query_inputs(retrieval), ranker=ranker_inputs(ranker_cfg),
                      retrieval_weight=float(ranker_cfg.retrieval_weight))


def _model_client(cfg: ServiceConfig, with_ranker: bool, label: str | None = None,
                  versions: dict[str, int] | None = None):
    """The models' client: the model server's (asking for ``label``), or the models in
    process (exactly ``versions`` when given, else the latest)."""
    from serving.recommendations.model_clients import GrpcModelClient, InProcessModelClient

    if cfg.model_server:
        return GrpcModelClient(cfg.model_server, label)
    from serving.batching import BatchingParameters, read_batching_parameters

    names = ["retrieval", "item_tower"] + (["ranker"] if with_ranker else [])
    batching = None
    if cfg.enable_batching:
        batching = (read_batching_parameters(Path(cfg.batching_parameters_file))
                    if cfg.batching_parameters_file else BatchingParameters())
    return InProcessModelClient({n: cfg.model_base_path / n for n in names},
                                batching=batching, versions=versions,
                                onnx={name for name, runtime in (
                                    ("ranker", cfg.ranker_runtime),
                                    ("retrieval", cfg.retrieval_runtime))
                                    if runtime == "onnxruntime"})


def _tower_settings(manifest: dict):
    """(model config, item age reference in microseconds) of an item_tower manifest."""
    import pandas as pd

    from recsys.model_contract.retrieval_config import model_config_of

    model_cfg = model_config_of(manifest)
    return model_cfg, int(pd.Timestamp(manifest["item_age_reference"]).value // 1000)


def _version_manifest(base: Path, artifact: str, version: int) -> dict:
    from recsys.model_contract.manifest import read_manifest

    manifest = read_manifest(base / artifact / str(version))
    if manifest is None:
        raise SourceError(f"the model server serves {artifact!r} version {version}, which has "
                          f"no manifest under {base}")
    return manifest


def item_index(cfg: ServiceConfig, models) -> ItemIndex:
    """The catalogue embedded by the item_tower version the model server answers with (one
    row asked first), with that version's settings."""
    from recsys.features.catalogue import read_catalogue
    from recsys.model_contract.arrays import to_arrays, with_item_age
    from recsys.model_contract.feature_spec import candidate_inputs

    catalogue = read_catalogue(cfg.catalogue_dir)
    manifest = latest_manifest(cfg.model_base_path, "item_tower")
    model_cfg, reference_us = _tower_settings(manifest)
    probe = to_arrays(with_item_age(catalogue.head(1), reference_us),
                      candidate_inputs(model_cfg), "the item catalogue")
    version = models.predict("item_tower", "item_tower", probe, 60.0).version
    if version != manifest["version"]:
        model_cfg, reference_us = _tower_settings(
            _version_manifest(cfg.model_base_path, "item_tower", version))
    return build_item_index(catalogue, models, model_cfg, reference_us, version)


def served_models(cfg: ServiceConfig, version: int | None = None) -> ServedModels:
    """The manifests of retrieval ``version`` (default: the newest) and of the ranker of the
    same version (or the newest ranker)."""
    from recsys.model_contract.manifest import read_manifest

    if version is None:
        return ServedModels(latest_manifest(cfg.model_base_path, "retrieval"),
                            latest_manifest(cfg.model_base_path, "ranker", required=False))
    ranker = read_manifest(cfg.model_base_path / "ranker" / str(version))
    return ServedModels(_version_manifest(cfg.model_base_path, "retrieval", version),
                        ranker or latest_manifest(cfg.model_base_path, "ranker",
                                                  required=False))


def version_refresher(cfg: ServiceConfig, models):
    """Rebuilds the item index and specs for the retrieval version the model server moved
    to (newer, or older after a rollback)."""
    from serving.recommendations.version_refresh import VersionRefresher

    def rebuild(version: int):
        index = item_index(cfg, models)
        if index.version != version:
            raise RuntimeError(f"item_tower answers with version {index.version}, retrieval "
                               f"with {version}")
        return index, model_specs(served_models(cfg, version))

    return VersionRefresher(rebuild)


def load_item_table(features, item_ids, specs, refresh_s: float):
    """The item feature table of ``item_ids``, read once now and then every ``refresh_s``
    in the background (``ItemTableLoader``)."""
    import time

    from serving.recommendations.item_features import ItemFeatureTable, ItemTableLoader

    started = time.perf_counter()
    loader = ItemTableLoader(ItemFeatureTable(item_ids, specs), features, refresh_s=refresh_s)
    try:
        read = loader.seed(*features.latest_items())
        source = "the offline store (latest values)"
    except Exception as exc:  # noqa: BLE001 - no bulk read (a reader without one, a failure)
        log.info("item feature table: no bulk read (%s); reading the online store", exc)
        read, source = loader.sweep(), "the online store"
    seconds = time.perf_counter() - started
    log.info("item feature table: %s of %s items read from %s in %.1fs (%s items/s); the "
             "online store is re-read every %gs", f"{read:,}", f"{len(item_ids):,}", source,
             seconds, f"{read / max(seconds, 1e-9):,.0f}", refresh_s)
    return loader.start()


def freeze_startup_heap() -> int:
    """Move everything loaded so far (models, item index and table, popular lists) out of the
    garbage collector's reach (``gc.freeze``): those millions of long-lived objects are never
    garbage, and a full collection walking them stops every request for tens to hundreds of
    milliseconds. Call once, after start-up, in the serving process; returns the objects
    frozen."""
    import gc

    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def _available_labels(cfg: ServiceConfig) -> dict[str, dict[str, int]] | None:
    """label -> {model: version} from the model_config_file (models in process); None with
    a model server (its labels are its own)."""
    if cfg.model_server:
        return None
    if not cfg.model_config_file:
        return {}
    from serving.recommendations.model_labels import label_versions

    return label_versions(Path(cfg.model_config_file))


def build_recommender(cfg: ServiceConfig, metrics: ServiceMetrics | None = None,
                      features=None, fresh=None, bandit=None) -> Recommender:
    """Everything the service needs, loaded once; ``features`` overrides the Feast reader;
    ``fresh`` (a FreshSource) adds the stream's fresh items to retrieval; ``bandit`` (a
    ``BanditParameters``, started here) gives the contextual bandit's parameters (None: its
    prior). Each model version label an experiment arm names gets a pipeline of its own,
    pinned to that label's versions (``Recommender.labelled``)."""
    from serving.recommendations.experiments import ExperimentsFile, arm_labels
    from serving.recommendations.exploration import Explorer

    labels = _available_labels(cfg)
    metrics = metrics or ServiceMetrics()
    # first: a bad experiments file stops the service before minutes of loading
    experiments = ExperimentsFile(
        Path(cfg.experiments) if cfg.experiments else None, cfg.rules,
        Path(cfg.experiments_change_log) if cfg.experiments_change_log else None,
        on_reload=lambda outcome: metrics.experiment_reloads.labels(outcome).inc(),
        labels=None if labels is None else set(labels))
    explorer = Explorer(bandit)
    main_label = cfg.model_label or None
    main_versions = None
    if main_label and labels is not None:  # in process: the label's versions, pinned
        if main_label not in labels:
            raise ConfigError(f"model_label {main_label!r} is not a label of "
                              f"model_config_file {cfg.model_config_file or '(none given)'} "
                              f"(labels: {', '.join(sorted(labels)) or 'none'})")
        main_versions = labels[main_label]
    recommender = _build(cfg, metrics, features, fresh, experiments, explorer, main_label,
                         main_versions)
    recommender.serving_label = cfg.model_label
    prepare = _label_preparer(cfg, metrics, recommender, fresh, experiments, explorer)
    try:
        prepare(arm_labels(experiments.definitions))
    except BaseException:
        recommender.close()
        recommender.models.close()
        raise
    # a reloaded file naming another label gets its pipeline before it is served
    experiments.labels, experiments.prepare = None, prepare
    experiments.start(cfg.experiments_poll_s)
    explorer.bandit.start()
    return recommender


def _label_preparer(cfg: ServiceConfig, metrics: ServiceMetrics, recommender: Recommender,
                    fresh, experiments, explorer) -> Callable[[set[str]], None]:
    """``prepare(labels)``: a pipeline for each label without one, its versions pinned from
    the model_config_file (read again: a label added since the start, a canary, counts) or
    followed on the model server; a label that cannot be served is a ConfigError naming it.
    Pipelines are only added (the first for a label stays), so a request never finds its
    label's pipeline gone."""
    lock = threading.Lock()

    def prepare(labels: set[str]) -> None:
        with lock:
            missing = sorted(set(labels) - set(recommender.labelled) - {cfg.model_label})
            if not missing:
                return
            available = _available_labels(cfg)
            for label in missing:
                if available is not None and label not in available:
                    raise ConfigError(
                        f"model_label {label!r}: not a label of model_config_file "
                        f"{cfg.model_config_file or '(none given)'} (labels: "
                        f"{', '.join(sorted(available)) or 'none'})")
                labelled = _build_label(cfg, metrics, recommender, fresh, experiments,
                                        explorer, label,
                                        None if available is None else available[label])
                labelled.serving_label = label
                # features are the same whatever the version: read once per request
                labelled.user_cache, labelled.item_cache = recommender.user_cache, \
                    recommender.item_cache
                recommender.labelled[label] = labelled
                log.info("serving model label %r beside %r", label,
                         cfg.model_label or "the newest versions")

    return prepare


def _build_label(cfg: ServiceConfig, metrics: ServiceMetrics, recommender: Recommender, fresh,
                 experiments, explorer, label: str, versions: dict[str, int] | None,
                 wait_s: float = 60.0) -> Recommender:
    """The pipeline of ``label``; on a model server, tried again for ``wait_s`` (a label the
    registry just moved is served once the server has loaded its version); a ConfigError
    naming the label when it cannot be built."""
    deadline = time.monotonic() + (wait_s if versions is None else 0.0)
    while True:
        try:
            return _build(cfg, metrics, recommender.features, fresh, experiments, explorer,
                          label, versions)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - named, and the file refused
            if time.monotonic() >= deadline:
                raise ConfigError(f"model_label {label!r} cannot be served: "
                                  f"{type(exc).__name__}: {exc}") from exc
            log.info("model label %r not servable yet (%s); trying again", label, exc)
            time.sleep(2.0)


def _build(cfg: ServiceConfig, metrics: ServiceMetrics, features, fresh, experiments,
           explorer, label: str | None = None, versions: dict[str, int] | None = None
           ) -> Recommender:
    """One pipeline: the latest versions, or those of ``label``."""
    from serving.recommendations.online_features import OnlineFeatures
    from serving.recommendations.popular_lists import PopularLists
    from serving.tf_threads import pin_tensorflow_threads

    # a process that already ran TensorFlow (the demo, tests) keeps the pools it has
    pin_tensorflow_threads(cfg.tensorflow_intra_op_parallelism,
                           cfg.tensorflow_inter_op_parallelism, level=logging.INFO)
    served = served_models(cfg)
    if versions is not None:  # a label's versions, in process: every model pinned
        served = served_models(cfg, versions["retrieval"])
        if "ranker" in versions:
            served = ServedModels(served.retrieval, _version_manifest(
                cfg.model_base_path, "ranker", versions["ranker"]))
        if served.ranker is not None:
            versions = {**versions, "ranker": int(served.ranker["version"])}
    popular = PopularLists.load(cfg.popular_lists_path)
    models = _model_client(cfg, served.ranker is not None, label, versions)
    index = item_index(cfg, models)
    if label is not None and versions is None:  # a model server's label: its versions
        served = served_models(cfg, index.version)
    features = features or OnlineFeatures(cfg.repo)
    specs = model_specs(served)
    item_loader = load_item_table(features, index.ids, specs.item_specs,
                                  cfg.item_table_refresh_s)
    log.info("recommender ready%s: %s items, retrieval v%s, ranker %s",
             f" for label {label!r}" if label else "", f"{len(index):,}",
             served.retrieval["version"],
             f"v{served.ranker['version']}" if served.ranker else "none")
    recommender = Recommender(cfg, features, models, popular, index, specs, metrics,
                              fresh=fresh, item_loader=item_loader, experiments=experiments,
                              explorer=explorer,
                              # pinned versions stay; the newest, or a model server's label,
                              # is followed when it moves
                              refresher=None if versions is not None
                              else version_refresher(cfg, models))
    recommender.warm_up()
    return recommender


__all__ = ["build_recommender", "freeze_startup_heap", "latest_manifest", "model_specs",
           "item_index", "load_item_table", "ServedModels", "served_models",
           "version_refresher"]
