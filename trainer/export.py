"""``recsys export``: the trained models as versioned SavedModels under a model base path.

Guarantees: the artifacts (``retrieval`` with ScaNN, ``retrieval_portable`` with a
brute-force index and stock ops only, ``item_tower``, and ``ranker`` with its ``rank``
signature when a ranker is given, and beside it the ranker's numeric core as ONNX with its
vocabularies, checked to give the signature's outputs) get the same new version number; each
is written to a temporary directory, loaded back with ``tf.saved_model.load`` and checked to
give the in-memory model's outputs; only when all pass are they renamed into place, so a
failed check publishes nothing. Every artifact but ``retrieval`` is refused if it contains a
custom op.
"""

from __future__ import annotations

import dataclasses
import logging
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import tensorflow as tf

from recsys.errors import RecsysError
from recsys.model_contract.arrays import to_arrays, with_item_age, with_missing_columns
from recsys.model_contract.feature_spec import candidate_inputs, query_inputs
from recsys.model_contract.manifest import ITEM_IDS, write_manifest
from recsys.model_contract.saved_model_ops import inspect_saved_model
from recsys.model_contract.versioning import next_version, staged_version
from recsys.monitoring.index_health import TIE_EPSILON, tie_aware_recall
from recsys.monitoring.profile import build_profile, write_profile
from trainer.evaluate import embed
from trainer.scann_config import ScannConfig
from trainer.serving_modules import ItemTowerModule, RankerModule, RetrievalModule

log = logging.getLogger(__name__)
ARTIFACTS = ("retrieval", "retrieval_portable", "item_tower")
RANKER = "ranker"
SAVE_OPTIONS = {"retrieval": ["Scann"], "retrieval_portable": [], "item_tower": [], "ranker": []}


class ExportError(RecsysError):
    """An artifact failed its load check; nothing of it was published."""


@dataclass
class ExportResult:
    version: int
    paths: dict[str, Path]
    items: int
    manifests: dict[str, dict]


def _sample(arrays: Mapping[str, np.ndarray], rows: int = 8) -> dict[str, tf.Tensor]:
    return {k: tf.constant(v[:rows]) for k, v in arrays.items()}


def _check_loaded(path: Path, signature: str, inputs: Mapping[str, tf.Tensor],
                  expected: Mapping[str, np.ndarray], artifact: str) -> None:
    loaded = tf.saved_model.load(str(path))
    if signature not in loaded.signatures:
        raise ExportError(f"{artifact}: signature {signature!r} missing after reload")
    got = loaded.signatures[signature](**inputs)
    approximate = artifact == "retrieval"  # the ScaNN searcher is rebuilt on load
    for name, want in expected.items():
        have = got[name].numpy()
        if approximate and name == "item_ids":
            continue  # ties and near-ties may come back in another order: judged by score
        if approximate and name == "scores":
            same = _same_top_scores(have, want)
        else:
            same = (np.array_equal(have, want) if have.dtype == object
                    else np.allclose(have, want, atol=1e-5))
        if not same:
            raise ExportError(f"{artifact}: output {name!r} differs after save -> load")


def _same_top_scores(have: np.ndarray, want: np.ndarray, k: int = 10,
                     min_recall: float = 0.9) -> bool:
    """The reloaded approximate index finds (nearly) the same top-k scores: at least
    ``min_recall`` of its top k reach the original's k-th score."""
    k = min(k, want.shape[1])
    bar = want[:, k - 1:k] - 1e-4
    return float(np.mean(have[:, :k] >= bar)) >= min_recall


def _without_keras_traces():
    """A scope in which ``tf.saved_model.save`` does not trace every Keras layer's call
    functions again for the Keras loader (what ``model.save(save_traces=False)`` does for a
    Keras model). Nothing served needs them: servers, ``tf.saved_model.load`` and the checks
    here call the module's signatures and read its tracked objects, which are saved either
    way. The traces were a quarter to 40% of an export's time."""
    from tf_keras.src.saving.legacy.saved_model.utils import keras_option_scope

    return keras_option_scope(save_traces=False)


def _stage(staging: Path, artifact: str, version: int, module, inputs, expected_signature,
           details: dict) -> dict:
    signatures = module.signatures()
    expected = {k: v.numpy() for k, v in signatures[expected_signature](**inputs).items()}
    options = tf.saved_model.SaveOptions(namespace_whitelist=SAVE_OPTIONS[artifact])
    with _without_keras_traces():
        tf.saved_model.save(module, str(staging), signatures=signatures, options=options)
    _check_loaded(staging, expected_signature, inputs, expected, artifact)
    if artifact != "retrieval" and not inspect_saved_model(staging).stock_serving_loadable:
        raise ExportError(f"{artifact} contains custom ops; it must load in stock TF Serving")
    return write_manifest(staging, artifact, version, details)


def _recall_at_10(found: np.ndarray, exact: np.ndarray) -> float:
    """Share of the exact top 10 ids that ``found`` holds (ties broken by id order)."""
    width = min(10, exact.shape[1])
    hits = [len(set(a[:width]) & set(b[:width])) for a, b in zip(found, exact)]
    return float(sum(hits) / (width * len(exact)))


def _described(layer, config: Mapping[str, Any]):
    """``layer`` (a TFRS top-k layer) with a ``get_config`` describing it. TFRS's ScaNN and
    BruteForce layers are Keras Models without one, so Keras warned at every save that it
    could not serialise them; a SavedModel restores them from their functions, never from a
    config, so the description is for readers of the Keras metadata only."""
    layer.get_config = lambda: {"class": type(layer).__name__, **config}
    return layer


def _tuned_scann(model, embeddings: tf.Tensor, identifiers: tf.Tensor, scann: ScannConfig, k: int,
                 queries: Mapping[str, tf.Tensor]):
    """A ScaNN layer over the embeddings; unless exact, the search widens (``widened``)
    until recall@``scann.check_depth(k)`` by score against exact search on ``queries``
    reaches ``scann.min_recall`` (or every leaf is searched and every item re-scored)."""
    import tensorflow_recommenders as tfrs

    depth = scann.check_depth(k)
    args = scann.layer_arguments(int(embeddings.shape[0]), k)
    query_embeddings = model.query_tower(queries)
    scores = query_embeddings.numpy() @ embeddings.numpy().T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :max(depth, 10)]
    ids = identifiers.numpy()
    exact, exact_scores = ids[order], np.take_along_axis(scores, order, axis=1)
    column = {item: i for i, item in enumerate(ids.tolist())}
    while True:
        # no query model: RetrievalModule searches it with the query tower's embedding
        index = _described(tfrs.layers.factorized_top_k.ScaNN(**args), args)
        index.index(embeddings, identifiers)
        found = index(query_embeddings)[1].numpy()[:, :max(depth, 10)]
        columns = np.array([[column.get(i, -1) for i in row] for row in found.tolist()])
        found_scores = np.where(columns >= 0, np.take_along_axis(
            scores, np.maximum(columns, 0), axis=1), -np.inf)
        recall = tie_aware_recall(found_scores, exact_scores, depth)
        recall_10 = tie_aware_recall(found_scores, exact_scores, 10)
        id_recall = _recall_at_10(found, exact)
        done = recall >= scann.min_recall or (
            args["num_leaves_to_search"] >= args["num_leaves"]
            and args["num_reordering_candidates"] >= int(embeddings.shape[0]))
        log.info("ScaNN %s leaves, %s searched, %s re-scored: recall@%d %.3f by score (ties "
                 "within %g count); recall@10 %.3f by score, %.3f by id; %d check queries",
                 args["num_leaves"], args["num_leaves_to_search"],
                 args["num_reordering_candidates"], depth, recall, TIE_EPSILON, recall_10,
                 id_recall, len(exact))
        if done or scann.exact:
            return index, {**args, "check_recall_at": depth, "check_recall": recall,
                           "check_recall@10": recall_10, "check_id_recall@10": id_recall,
                           "check_queries": len(exact)}
        args = widened(args, int(embeddings.shape[0]))


def widened(args: Mapping[str, Any], items: int) -> dict:
    """The next, wider ScaNN search: the exact re-scoring budget
    (``num_reordering_candidates``) doubles while it is under half the items the searched
    leaves hold, then the leaves searched double. On a catalogue of near-duplicates the
    quantised scores cannot order the top items and recall waits on re-scoring, not on
    leaves: on 1M synthetic items, 200 of 1,000 leaves with 64,000 re-scored reached recall
    0.98, where doubling both together had searched every leaf first."""
    search, leaves = args["num_leaves_to_search"], args["num_leaves"]
    reorder = args["num_reordering_candidates"]
    if search >= leaves or reorder < min(items, items * search / leaves / 2):
        return {**args, "num_reordering_candidates": min(items, 2 * reorder)}
    return {**args, "num_leaves_to_search": min(leaves, 2 * search)}


def export_models(model, candidates: pd.DataFrame, reference_us: int, base_path: Path,
                  k: int = 100, scann: ScannConfig = ScannConfig(),
                  queries: pd.DataFrame | None = None,
                  details: Mapping[str, Any] | None = None, ranker=None,
                  ranker_details: Mapping[str, Any] | None = None,
                  profile_rows: pd.DataFrame | None = None) -> ExportResult:
    """Export ``model`` (a trained TwoTowerModel) indexing ``candidates`` (catalogue rows),
    whose ages are taken at ``reference_us``, and ``ranker`` (a RankerModel) if given.
    ``queries`` (rows with the query inputs) feed the load checks; without them a synthetic
    query of unknown user and empty history is used. ``profile_rows`` (training examples with
    the query inputs) give the retrieval artifacts their reference profile
    (``recsys.monitoring.profile``): the inputs, and the query embeddings and top scores the
    version gives them."""
    import tensorflow_recommenders as tfrs

    cfg = model.cfg
    items = to_arrays(with_item_age(candidates, reference_us), candidate_inputs(cfg),
                      "the catalogue")
    n = len(items["item_id"])
    if n == 0:
        raise ExportError("the catalogue is empty: nothing to index")
    k = min(k, n)
    embeddings = tf.constant(embed(model.candidate_tower, items))
    identifiers = tf.constant(items["item_id"])
    query_specs = query_inputs(cfg)
    if queries is None or queries.empty:
        queries = pd.DataFrame({s.name: [s.missing if s.width is None else []]
                                for s in query_specs})
    query_sample = _sample(to_arrays(queries, query_specs, "the check queries"), rows=256)
    version = next_version(base_path, (*ARTIFACTS, RANKER))
    info = {"embedding_dim": cfg.output_dim, "item_count": n, "k": k,
            "model_config": dataclasses.asdict(cfg),
            "item_age_reference": pd.Timestamp(reference_us, unit="us", tz="UTC").isoformat(),
            **(details or {})}

    index, scann_args = _tuned_scann(model, embeddings, identifiers, scann, k, query_sample)
    brute = _described(tfrs.layers.factorized_top_k.BruteForce(k=k), {"k": k})
    brute.index(embeddings, identifiers)
    modules = {
        "retrieval": (RetrievalModule(index, model.query_tower, query_specs, k), query_sample,
                      "retrieval", {**info, "index": {"type": "scann", **scann_args}}),
        "retrieval_portable": (RetrievalModule(brute, model.query_tower, query_specs, k),
                               query_sample, "retrieval", {**info, "index": {"type":
                                                                             "brute_force"}}),
        "item_tower": (ItemTowerModule(model.candidate_tower, candidate_inputs(cfg)),
                       _sample(items), "item_tower", info),
    }
    if ranker is not None:
        from recsys.model_contract.ranker_inputs import ranker_inputs

        specs = ranker_inputs(ranker.cfg)
        rows = _ranker_check_rows(queries, candidates, reference_us, specs)
        modules[RANKER] = (RankerModule(ranker, specs), _sample(rows), "rank", {
            "model_config": ranker.cfg.to_dict(), "item_table_size": len(ranker.table_ids),
            "candidates": ranker.cfg.candidates, **(ranker_details or {})})
    profile = _reference_profile(modules["retrieval"][0], query_specs,
                                 None if profile_rows is None else
                                 with_missing_columns(profile_rows.copy(), query_specs))
    paths, manifests = {}, {}
    with ExitStack() as stack:  # all are renamed into place only if all pass
        for artifact, (module, inputs, signature, details_) in modules.items():
            staging = stack.enter_context(staged_version(base_path / artifact, version))
            manifests[artifact] = _stage(staging, artifact, version, module, inputs, signature,
                                         details_)
            if artifact == RANKER:
                _stage_onnx_core(ranker, staging, module, inputs)
            if artifact == "retrieval":
                _stage_onnx_query(model.query_tower, staging, inputs, k)
            if profile is not None and artifact in ("retrieval", "retrieval_portable"):
                write_profile(staging, profile)
            if artifact != RANKER:  # which items this version's index holds
                (staging / ITEM_IDS).write_text("\n".join(
                    i.decode() if isinstance(i, bytes) else str(i) for i in items["item_id"]))
            paths[artifact] = base_path / artifact / str(version)
    for path in paths.values():
        log.info("exported %s", path)
    return ExportResult(version, paths, n, manifests)


def _reference_profile(module, specs, rows: pd.DataFrame | None) -> dict | None:
    """The retrieval version's reference profile on ``rows`` (None without rows)."""
    if rows is None or rows.empty:
        return None
    outputs = module.signatures()["retrieval"](**_sample(to_arrays(rows, specs,
                                                                   "the profile rows"),
                                                         rows=len(rows)))
    columns = {s.name: rows[s.name].tolist() for s in specs}
    return build_profile(columns, embeddings=outputs["query_embedding"].numpy(),
                         scores=outputs["scores"].numpy()[:, 0],
                         identifiers=("user_id", "history_item_ids"))


def _stage_onnx_core(ranker, staging: Path, module, inputs: Mapping[str, tf.Tensor]) -> None:
    """The ranker's numeric core as ONNX and its vocabularies, beside the SavedModel, checked
    to give the ``rank`` signature's outputs on the check rows (1e-4) through ONNX Runtime."""
    from recsys.model_contract.onnx_ranker import OnnxRanker
    from trainer.ranking.onnx_core import write_encoding, write_onnx_core

    extra = staging / "assets.extra"
    write_encoding(ranker, extra)
    write_onnx_core(ranker, extra)
    expected = {k: v.numpy() for k, v in module.signatures()["rank"](**inputs).items()}
    got = OnnxRanker(staging).run({k: v.numpy() for k, v in inputs.items()})
    for name, value in expected.items():
        if not np.allclose(got[name], value, rtol=1e-4, atol=1e-4):
            raise ExportError(f"ranker: the ONNX core's {name} differs from the SavedModel's "
                              f"by up to {np.max(np.abs(got[name] - value)):.2g}")


def _stage_onnx_query(tower, staging: Path, inputs: Mapping[str, tf.Tensor], k: int) -> None:
    """The query tower's numeric core as ONNX and its vocabularies, beside the ScaNN
    SavedModel, checked against the reloaded ``retrieval`` signature on the check queries in
    two parts: the ONNX tower's query embeddings equal the signature's to 1e-4, and the ONNX
    path's search, given the signature's own embeddings, finds the same top 10 by score (at
    least 99% of them reach the signature's 10th score). The search is not checked on the ONNX
    embeddings: an approximate searcher picks leaves by the embedding, and a float32-rounding
    difference can flip a tie between two leaves and change every result when one leaf of many
    is searched (CI, 2026-12-05: an index searching 1 of 30 leaves)."""
    from recsys.model_contract.onnx_retrieval import OnnxRetrieval
    from trainer.query_onnx import write_query_core, write_query_encoding

    extra = staging / "assets.extra"
    write_query_encoding(tower, extra)
    write_query_core(tower, extra)
    loaded = tf.saved_model.load(str(staging))
    expected = {n: v.numpy() for n, v in loaded.signatures["retrieval"](**inputs).items()}
    retrieval = OnnxRetrieval(staging, loaded, k)
    got = retrieval.run("retrieval", {n: v.numpy() for n, v in inputs.items()},
                        ("query_embedding",))
    difference = np.abs(got["query_embedding"] - expected["query_embedding"])
    if not np.allclose(got["query_embedding"], expected["query_embedding"], rtol=1e-4,
                       atol=1e-4):
        raise ExportError(f"retrieval: the ONNX query tower's embeddings differ from the "
                          f"SavedModel's by up to {difference.max():.2g}")
    _, scores = retrieval.search(expected["query_embedding"])
    if not _same_top_scores(scores, expected["scores"], min_recall=0.99):
        raise ExportError("retrieval: the ONNX path's search finds other items than the "
                          "SavedModel's for the same query embeddings")


def _ranker_check_rows(queries: pd.DataFrame, candidates: pd.DataFrame, reference_us: int,
                       specs) -> dict[str, np.ndarray]:
    """Rows for the ranker's load check: the check queries, each with a catalogue item."""
    rows = queries.head(8).reset_index(drop=True)
    content = with_item_age(candidates.head(len(rows)).reset_index(drop=True), reference_us)
    rows = rows.drop(columns=[c for c in content.columns if c in rows.columns])
    rows = pd.concat([rows, content.iloc[:len(rows)].reset_index(drop=True)], axis=1)
    return to_arrays(with_missing_columns(rows, specs), specs, "the ranker check rows")


__all__ = ["export_models", "ExportResult", "ExportError", "ARTIFACTS", "RANKER"]
