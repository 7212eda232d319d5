"""Incremental training: fine-tune the models of an exported version on the interactions
that came after it, and export the next version only if it passes the quality gate against
the version being fine-tuned.

Guarantees:
* The version's models are found through its manifests (``model_dir``, ``ranker_dir``); they
  are never written to: the fine-tuned model goes to a new directory.
* "New" means train examples later than the version's training data end
  (``data.json``), or than ``since`` when it is given (the start of a drift: what came
  after it is what the model must learn); none is a SourceError saying how to get some.
  Each new example is trained on with ``replay_ratio`` older ones replayed (seeded; 1 by
  default, so the model does not forget what the version knew; fewer after a drift, when
  the older examples teach what no longer holds).
* Both models are scored on the same test split by the same protocol; the decision, the
  figures and the counts are written to ``warm_start.json`` in the new directory, and the
  next version is exported (all artifacts, so the model server moves to it whole, with the
  version's ``k``) only when the gate passes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from recsys.errors import ConfigError, SourceError
from recsys.evaluation.ranking import NonFiniteScores
from recsys.model_contract.manifest import MANIFEST, read_manifest
from trainer.evaluate import evaluate_ranked, evaluate_scores, two_tower_scores
from trainer.evaluation_set import build_evaluation_set
from trainer.model_dir import ModelDir
from trainer.quality_gate import GateDecision, QualityGate
from trainer.training_data import RetrievalData, load_retrieval_data, timestamps_us

log = logging.getLogger(__name__)
WARM_START_FILE = "warm_start.json"
BASE_KS = (10, 20, 100)


@dataclass
class WarmStartResult:
    base_version: int
    new_examples: int
    replayed: int
    decision: GateDecision
    exported_version: int | None
    directory: Path


def version_detail(base_path: Path, artifact: str, version: int, key: str) -> Path:
    """A path the ``artifact``'s manifest of ``version`` records (``model_dir``,
    ``ranker_dir``), checked to exist."""
    path = Path(base_path) / artifact / str(version)
    manifest = read_manifest(path)
    if manifest is None:
        have = sorted(int(p.name) for p in (Path(base_path) / artifact).glob("*")
                      if p.name.isdigit()) if (Path(base_path) / artifact).is_dir() else []
        raise SourceError(f"{path} is not an exported version (no {MANIFEST}); versions of "
                          f"{artifact!r} under {base_path}: {have or 'none'}")
    if key not in manifest:
        raise SourceError(f"version {version} of {artifact!r} does not record its {key} "
                          f"({path / MANIFEST}); it cannot be fine-tuned")
    found = Path(manifest[key])
    if not found.is_dir():
        raise SourceError(f"version {version}'s {key} {found} is gone; it cannot be "
                          "fine-tuned")
    return found


def split_new(data: RetrievalData, since_us: int, version: int, seed: int,
              replay_ratio: float = 1.0, since_given: bool = False
              ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(older examples, new examples, the older ones replayed: ``replay_ratio`` per new
    one, at most all of them) of ``data.train``."""
    if not replay_ratio >= 0:
        raise ConfigError(f"the replay ratio must be a number >= 0, got {replay_ratio!r}")
    ts = timestamps_us(data.train)
    new, old = data.train[ts > since_us], data.train[ts <= since_us]
    if new.empty:
        after = "--since" if since_given else f"version {version}'s data"
        raise SourceError(f"no training examples after {after} "
                          f"({pd.Timestamp(since_us, unit='us', tz='UTC')}; the newest is "
                          f"{pd.Timestamp(int(ts.max()), unit='us', tz='UTC')}): ingest "
                          "events, then run `recsys features build` before fine-tuning")
    replay = old.sample(n=min(len(old), int(round(len(new) * replay_ratio))),
                        random_state=seed)
    return old, new, replay


def _gate_data(repo: Path) -> RetrievalData:
    """The repository's examples; the quality gate needs a test split."""
    data = load_retrieval_data(repo)
    if data.test.empty:
        raise SourceError("no test examples for the quality gate: build the features with "
                          "--split temporal")
    return data


def _protocol(evaluate, gate: QualityGate) -> dict:
    """``evaluate()``'s metrics; a model whose scores are not finite (training diverged) gets
    NaN for the gate's metric, which never passes."""
    try:
        return evaluate()
    except NonFiniteScores as exc:
        log.warning("the model's scores are not finite (%s): it cannot pass the gate", exc)
        return {gate.metric: float("nan")}


def _ks(gate: QualityGate) -> list[int]:
    return sorted({*BASE_KS, *([gate.k] if gate.k else [])})


def _slates(lake: Path | None, data: RetrievalData, gate: QualityGate):
    """The test positives' logged answers in ``lake`` (None without a lake); a gate on
    slate_auc without them is an error, other gates go on without the figure."""
    from trainer.slate_evaluation import SLATE_AUC, logged_slates

    if lake is None:
        return None
    try:
        return logged_slates(Path(lake), data.test, data.catalogue)
    except SourceError as exc:
        if gate.metric == SLATE_AUC:
            raise
        log.warning("no slate metrics: %s", exc)
        return None


def _retrieval_metrics(model_dir: Path, es, ks: list[int], gate: QualityGate,
                       slates) -> dict:
    """The protocol's figures of the two-tower model in ``model_dir`` on ``es``, and its
    slate_auc on ``slates`` when given."""
    from trainer.slate_evaluation import slate_auc

    model = ModelDir(model_dir).restore()[2]
    metrics = _protocol(lambda: evaluate_scores(two_tower_scores(model, es), es, ks)[
        "overall"], gate)
    if slates is not None:
        metrics.update(slate_auc(model, slates))
    return metrics


def _new_directory(path: Path, source: Path) -> Path:
    path = Path(path)
    if path.resolve() == Path(source).resolve():
        raise ConfigError(f"the fine-tuned model needs a new directory; {path} is the one the "
                          "version was trained in")
    if path.exists() and any(path.iterdir()):
        raise ConfigError(f"{path} exists and is not empty; give a new directory for the "
                          "fine-tuned model")
    return path


def _paired_evaluation(model_dir: Path, repo: Path, version: int, scored: dict) -> None:
    """``MODEL_DIR/evaluation.json`` (the export copies it into the manifest): the candidate's
    figures, and version ``version``'s on the same test split (``baseline``), so a blessing
    compares the two on the same data rather than on the splits each was trained with."""
    from recsys.evaluation.report import protocol_document
    from trainer.workflow import EVALUATION_FILE

    (Path(model_dir) / EVALUATION_FILE).write_text(json.dumps(protocol_document(
        f"warm start of version {version}: the test split of {repo}",
        {"two-tower": {"overall": scored["candidate"]}},
        {"baseline": {"version": version,
                      "models": {"two-tower": {"overall": scored["current"]}}}}), indent=2))


def _record(directory: Path, base_version: int, decision: GateDecision, counts: dict,
            metrics: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / WARM_START_FILE).write_text(json.dumps(
        {"base_version": base_version, "gate": dataclasses.asdict(decision), **counts,
         "metrics": metrics}, indent=2))


def warm_start_retrieval(repo: Path, base_path: Path, version: int, model_dir: Path,
                         train_overrides: dict, gate: QualityGate, progress: bool = True,
                         export_options: dict | None = None, lake: Path | None = None,
                         since_us: int | None = None, replay_ratio: float = 1.0,
                         ips_clip: float | None = None, forget_users: bool = False
                         ) -> WarmStartResult:
    """Fine-tune version ``version``'s two-tower model into ``model_dir``; export the next
    version if it passes ``gate`` (with the version's ranker, if it had one). With ``lake``
    both models are also scored within the answers its exposure log holds (slate_auc).
    ``since_us`` (default: the version's data end) starts the new examples; each is trained
    on with ``replay_ratio`` older ones. With ``ips_clip``, each new example weighs
    ``min(1 / propensity, ips_clip)`` in the loss (``trainer/propensity_weights.py``; the
    replayed ones 1). ``forget_users``: every user's id row starts as the unknown user's
    (after a drift, the rows hold the tastes from before it)."""
    from trainer import workflow
    from trainer.config import RetrievalConfig
    from trainer.slate_evaluation import SLATE_AUC
    from trainer.train import train_retrieval

    if lake is None and gate.metric == SLATE_AUC:
        raise ConfigError("the gate metric slate_auc needs the lake whose exposure log holds "
                          "the served answers (--lake)")
    if lake is None and ips_clip is not None:
        raise ConfigError("inverse propensity weights need the lake whose exposure log holds "
                          "the served answers' propensities (--lake)")
    source = ModelDir(version_detail(base_path, "retrieval", version, "model_dir"))
    model_dir = _new_directory(model_dir, source.path)
    data = _gate_data(repo)
    slates = _slates(lake, data, gate)
    base_cfg = source.read_config()
    cfg = RetrievalConfig.from_dict({**base_cfg.to_dict(), "train": {
        **base_cfg.to_dict()["train"], **{k: v for k, v in train_overrides.items()
                                          if v is not None}}})
    since = source.data_end_us() if since_us is None else int(since_us)
    _, new, replay = split_new(data, since, version, cfg.train.seed, replay_ratio,
                               since_given=since_us is not None)
    weighting = None
    if ips_clip is not None:
        from trainer.propensity_weights import inverse_propensity_weights
        from trainer.retrieval_model import EXAMPLE_WEIGHT

        weighting = inverse_propensity_weights(lake, new, ips_clip)
        new = new.assign(**{EXAMPLE_WEIGHT: weighting.weights})
        replay = replay.assign(**{EXAMPLE_WEIGHT: 1.0})
    tune = RetrievalData(train=pd.concat([replay, new]).sort_values(
        ["event_timestamp", "example_id"], kind="stable").reset_index(drop=True),
        test=data.test, catalogue=data.catalogue)
    log.info("fine-tuning version %d on %s new examples and %s replayed", version,
             f"{len(new):,}", f"{len(replay):,}")
    train_retrieval(tune, cfg, model_dir, progress=progress, init_from=source,
                    reset_users=forget_users)
    es = build_evaluation_set(data)
    ks = _ks(gate)
    scored = {name: _retrieval_metrics(path, es, ks, gate, slates)
              for name, path in (("current", source.path), ("candidate", model_dir))}
    decision = gate.judge(scored["current"], scored["candidate"])
    _record(model_dir, version, decision, {
        "new_examples": len(new), "replayed": len(replay), "replay_ratio": replay_ratio,
        "since": pd.Timestamp(since, unit="us", tz="UTC").isoformat(),
        "inverse_propensity": None if weighting is None else {
            "clip": ips_clip, **weighting.summary()}, "forget_users": forget_users}, scored)
    _paired_evaluation(model_dir, repo, version, scored)
    log.info(decision.summary())
    exported = None
    if decision.passed:
        ranker = _optional_detail(base_path, "ranker", version, "ranker_dir")
        exported = workflow.export(repo, model_dir, base_path, ranker_dir=ranker,
                                   **_export_options(base_path, version, export_options)
                                   ).version
    return WarmStartResult(version, len(new), len(replay), decision, exported, model_dir)


def _export_options(base_path: Path, version: int, given: dict | None) -> dict:
    """Export settings of the next version: the base version's ``k`` unless given."""
    manifest = read_manifest(Path(base_path) / "retrieval" / str(version)) or {}
    return {**({"k": int(manifest["k"])} if "k" in manifest else {}), **(given or {})}


def _optional_detail(base_path: Path, artifact: str, version: int, key: str) -> Path | None:
    if not (Path(base_path) / artifact / str(version)).is_dir():
        return None
    return version_detail(base_path, artifact, version, key)


def warm_start_ranking(repo: Path, base_path: Path, version: int, ranker_dir: Path,
                       overrides: dict, gate: QualityGate, progress: bool = True,
                       export_options: dict | None = None) -> WarmStartResult:
    """Fine-tune version ``version``'s ranker on candidate lists of the interactions after
    it (the version's two-tower model's candidates at each user's first new interaction,
    labelled by what the user engaged with); export the next version, with the same two-tower
    model, if the re-ranked candidates pass ``gate``."""
    from trainer import workflow
    from trainer.ranking.evaluate import reranked
    from trainer.ranking.ranker_dir import RankerDir
    from trainer.ranking.stacking import candidate_lists
    from trainer.ranking.train import train_ranker

    source = RankerDir(version_detail(base_path, "ranker", version, "ranker_dir"))
    retrieval_dir = version_detail(base_path, "retrieval", version, "model_dir")
    ranker_dir = _new_directory(ranker_dir, source.path)
    data = _gate_data(repo)
    current = source.restore()
    cfg = dataclasses.replace(current.cfg, **{k: v for k, v in overrides.items()
                                              if v is not None})
    old, new, _ = split_new(data, source.data_end_us(), version, cfg.seed)
    _, _, two_tower = ModelDir(retrieval_dir).restore()
    es = build_evaluation_set(data)
    ks = _ks(gate)
    depth = max(cfg.candidates, *ks)

    def score(ranker) -> dict:
        return _protocol(lambda: evaluate_ranked(reranked(
            ranker, two_tower, es, data.catalogue, repo, depth=depth), es, ks)["overall"], gate)

    scored = {"current": score(current)}
    lists = candidate_lists(two_tower, RetrievalData(train=old, test=new,
                                                     catalogue=data.catalogue), repo, cfg)
    log.info("fine-tuning version %d's ranker on %d lists of new interactions", version,
             lists.lists)
    result = train_ranker(lists, cfg, current.table_ids, current.table_vectors, init=current)
    directory = RankerDir(Path(ranker_dir))
    directory.save(result.model, {"data_end_us": int(timestamps_us(data.train).max()),
                                  "lists": lists.lists,
                                  "positives": lists.positives,
                                  "retrieval_model_dir": str(retrieval_dir.resolve()),
                                  "warm_start_from": str(source.path.resolve())},
                   result.losses)
    scored["candidate"] = score(result.model)
    decision = gate.judge(scored["current"], scored["candidate"])
    _record(directory.path, version, decision, {"new_examples": len(new), "replayed": 0},
            scored)
    log.info(decision.summary())
    exported = None
    if decision.passed:
        exported = workflow.export(repo, retrieval_dir, base_path, ranker_dir=directory.path,
                                   **_export_options(base_path, version, export_options)
                                   ).version
    return WarmStartResult(version, len(new), 0, decision, exported, directory.path)


__all__ = ["warm_start_retrieval", "warm_start_ranking", "WarmStartResult", "version_detail",
           "split_new", "WARM_START_FILE"]
