"""Exporting the towers: versions, manifests, save -> load in fresh processes, ScaNN vs an
exact NumPy oracle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_recommenders as tfrs

from recsys.errors import ConfigError
from recsys.features.catalogue import read_catalogue
from recsys.model_contract.feature_spec import query_inputs
from recsys.model_contract.manifest import read_manifest
from recsys.model_contract.versioning import next_version, staged_version, versions
from recsys.monitoring.profile import drift_report, read_profile
from trainer.export import ARTIFACTS, export_models
from trainer.model_dir import ModelDir
from trainer.scann_config import ScannConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exported(trained_model_dir, small_repo, small_data, tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    _, _, model = ModelDir(trained_model_dir).restore()
    result = export_models(model, read_catalogue(small_repo / "data"),
                           ModelDir(trained_model_dir).data_end_us(), base, k=20,
                           scann=ScannConfig(min_recall=0.99),
                           queries=small_data.train.sample(200, random_state=0),
                           profile_rows=small_data.train.sample(1_500, random_state=1))
    return base, result


def _run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         timeout=240, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


QUERIES = """
import json, sys
import recsys
import pandas as pd
from recsys.model_contract.arrays import to_arrays
from recsys.model_contract.feature_spec import query_inputs
from trainer.config import RetrievalConfig
cfg = RetrievalConfig.from_dict({"model": json.load(open(sys.argv[2]))["model_config"]}).model
frame = pd.read_parquet(sys.argv[3])
queries = to_arrays(frame, query_inputs(cfg))
"""

FRESH_SCANN = QUERIES + """
import scann  # registers the Scann ops, as a server of this model must
import numpy as np, tensorflow as tf
model = tf.saved_model.load(sys.argv[1] + "/retrieval/1")
portable = tf.saved_model.load(sys.argv[1] + "/retrieval_portable/1")
tower = tf.saved_model.load(sys.argv[1] + "/item_tower/1")
feed = {k: tf.constant(v) for k, v in queries.items()}
got = model.signatures["retrieval"](**feed)
q = model.signatures["query_embedding"](**feed)["embedding"].numpy()
catalogue = pd.read_parquet(sys.argv[4])
items = {k: tf.constant(np.stack(catalogue[k].to_numpy()) if k == "item_tags"
                        else catalogue[k].to_numpy()) for k in catalogue.columns}
emb = tower.signatures["item_tower"](**items)["embedding"].numpy()
exact = np.argsort(-(q @ emb.T), axis=1, kind="stable")[:, :10]
ids = catalogue["item_id"].to_numpy()
hits = [len(set(got["item_ids"].numpy()[r, :10].astype(str)) & set(ids[exact[r]]))
        for r in range(len(q))]
print(json.dumps({"recall": sum(hits) / (10 * len(q)), "rows": len(q),
                  "shape": list(got["item_ids"].shape)}))
"""

FRESH_PORTABLE = QUERIES + """
import numpy as np, tensorflow as tf
model = tf.saved_model.load(sys.argv[1] + "/retrieval_portable/1")
feed = {k: tf.constant(v) for k, v in queries.items()}
got = model.signatures["serving_default"](**feed)
print(json.dumps({"scann_imported": "scann" in sys.modules,
                  "tfrs_imported": "tensorflow_recommenders" in sys.modules,
                  "ids": got["item_ids"].numpy()[:, :10].astype(str).tolist(),
                  "scores": got["scores"].numpy()[:, :10].tolist()}))
"""


def _write_inputs(tmp_path, exported, small_data, rows=64):
    base, result = exported
    manifest = base / "retrieval" / "1" / "assets.extra" / "manifest.json"
    queries = tmp_path / "queries.parquet"
    small_data.test.head(rows).to_parquet(queries)
    return base, manifest, queries


def test_three_artifacts_share_a_version_with_manifests(exported):
    base, result = exported
    assert result.version == 1 and set(result.paths) == set(ARTIFACTS)
    for name in ARTIFACTS:
        assert versions(base / name) == [1]
        manifest = read_manifest(base / name / "1")
        assert manifest["artifact"] == name and manifest["version"] == 1
        assert manifest["embedding_dim"] == 16 and manifest["item_count"] == result.items
        assert manifest["stack"]["tensorflow"].startswith("2.20")
        assert manifest["stack"]["scann"] == "1.4.2"
    index = read_manifest(base / "retrieval" / "1")["index"]
    assert index["type"] == "scann" and index["check_recall"] >= 0.99
    assert index["check_recall_at"] == 20 == index["k"]  # tuned at the depth a request reads
    assert 0 < index["check_recall@10"] <= 1 and index["check_queries"] == 200
    assert read_manifest(base / "retrieval_portable" / "1")["index"] == {"type": "brute_force"}
    scann_ops = read_manifest(base / "retrieval" / "1")["ops"]
    assert "Scann>ScannSearchBatched" in scann_ops["custom"]
    assert scann_ops["stock_tf_serving_loadable"] is False
    for name in ("retrieval_portable", "item_tower"):
        ops = read_manifest(base / name / "1")["ops"]
        assert ops["custom"] == [] and ops["stock_tf_serving_loadable"] is True
    signatures = read_manifest(base / "retrieval" / "1")["signatures"]
    assert signatures["retrieval"]["outputs"] == {"item_ids": ["string", [-1, 20]],
                                                  "scores": ["float32", [-1, 20]],
                                                  "query_embedding": ["float32", [-1, 16]]}
    assert {"user_id", "history_item_ids"} <= set(signatures["retrieval"]["inputs"])


def test_exports_hold_the_signatures_functions_without_keras_layer_traces(exported):
    """The artifacts are saved without Keras's per-layer call traces (a quarter to 40%
    of an export and only the Keras loader reads them); the signatures' functions are there."""
    from tensorflow.core.protobuf import saved_model_pb2

    base, _ = exported
    for name in ARTIFACTS:
        proto = saved_model_pb2.SavedModel()
        proto.ParseFromString((base / name / "1" / "saved_model.pb").read_bytes())
        functions = [f.signature.name for f in proto.meta_graphs[0].graph_def.library.function]
        assert functions and not [f for f in functions if "layer_call_and_return" in f], name


def test_retrieval_versions_carry_a_reference_profile_that_sees_a_shift(exported,
                                                                        small_data):
    base, result = exported
    assert read_profile(result.paths["item_tower"]) is None
    profile = read_profile(result.paths["retrieval"])
    assert profile == read_profile(result.paths["retrieval_portable"])
    columns = profile["columns"]
    assert "user_id" not in columns and "history_item_ids#values" not in columns  # ids
    assert {"history_item_ids#length", "history_categories#values", "history_gaps_s#values",
            "device", "country", "user_engagements_30d"} <= set(columns)
    assert columns["device"]["rows"] == 1_500 and len(columns["device"]["sample"]) == 1_500
    embeddings = np.array(profile["query_embeddings"])
    assert embeddings.shape == (300, result.manifests["retrieval"]["embedding_dim"])
    assert len(profile["scores"]) == 1_500 and np.isfinite(profile["scores"]).all()
    # a window of other training rows, then the same rows with the device moved to tv
    window = small_data.train.drop(small_data.train.sample(1_500, random_state=1).index)
    window = window.sample(min(800, len(window)), random_state=2)
    names = ["device", "country", "user_engagements_30d", "history_categories"]
    same = {r.feature: r for r in drift_report(profile, {n: window[n].tolist()
                                                         for n in names})}
    moved = drift_report(profile, {"device": ["tv"] * len(window)})
    assert not same["device"].drift and moved[0].feature == "device" and moved[0].drift


def test_scann_model_in_a_fresh_process_matches_exact_search(exported, small_data,
                                                             small_repo, tmp_path):
    base, manifest, queries = _write_inputs(tmp_path, exported, small_data)
    catalogue = read_catalogue(small_repo / "data")
    from recsys.model_contract.arrays import to_arrays, with_item_age
    from recsys.model_contract.feature_spec import candidate_inputs

    cfg = json.loads(manifest.read_text())["model_config"]
    from trainer.config import RetrievalConfig

    model_cfg = RetrievalConfig.from_dict({"model": cfg}).model
    ref = exported[1].manifests["retrieval"]["item_age_reference"]
    import pandas as pd

    arrays = to_arrays(with_item_age(catalogue, pd.Timestamp(ref).value // 1000),
                       candidate_inputs(model_cfg))
    items = tmp_path / "items.parquet"
    pd.DataFrame({k: list(v) if v.ndim == 2 else v for k, v in arrays.items()}).to_parquet(items)
    result = _run(FRESH_SCANN, str(base), str(manifest), str(queries), str(items))
    assert result["rows"] == 64 and result["shape"] == [64, 20]
    assert result["recall"] >= 0.95


def test_portable_model_loads_without_scann_and_matches_the_scann_model(exported, small_data,
                                                                        tmp_path):
    base, manifest, queries = _write_inputs(tmp_path, exported, small_data, rows=16)
    result = _run(FRESH_PORTABLE, str(base), str(manifest), str(queries))
    assert result["scann_imported"] is False and result["tfrs_imported"] is False
    assert len(result["ids"]) == 16 and all(len(row) == 10 for row in result["ids"])
    scores = np.asarray(result["scores"])
    assert np.all(np.diff(scores, axis=1) <= 1e-6), "scores must come best first"


def test_every_artifact_gives_the_same_outputs_after_save_and_load(exported, trained_model_dir,
                                                                   small_data, small_repo):
    from recsys.model_contract.arrays import to_arrays
    from recsys.model_contract.feature_spec import query_inputs

    base, _ = exported
    _, _, model = ModelDir(trained_model_dir).restore()
    feed = {k: tf.constant(v) for k, v in
            to_arrays(small_data.test.head(8), query_inputs(model.cfg)).items()}
    expected = model.query_tower(feed).numpy()
    for name in ("retrieval", "retrieval_portable"):
        loaded = tf.saved_model.load(str(base / name / "1"))
        got = loaded.signatures["query_embedding"](**feed)["embedding"].numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5)
    from recsys.features.catalogue import read_catalogue
    from recsys.model_contract.arrays import with_item_age
    from recsys.model_contract.feature_spec import candidate_inputs

    items = {k: tf.constant(v) for k, v in to_arrays(
        with_item_age(read_catalogue(small_repo / "data").head(32), 1_700_000_000_000_000),
        candidate_inputs(model.cfg)).items()}
    tower = tf.saved_model.load(str(base / "item_tower" / "1"))
    np.testing.assert_allclose(tower.signatures["item_tower"](**items)["embedding"].numpy(),
                               model.candidate_tower(items).numpy(), atol=1e-5)
    # ScaNN against the exact index, by score so that ties at the 10th place do not count
    # as misses, on 64 held-out queries (the fixture tunes ScaNN to recall@10 >= 0.99 on
    # 200 training queries)
    queries = {k: tf.constant(v) for k, v in
               to_arrays(small_data.test.head(64), query_inputs(model.cfg)).items()}
    exact = tf.saved_model.load(str(base / "retrieval_portable" / "1")).signatures[
        "retrieval"](**queries)["scores"].numpy()[:, :10]
    approx = tf.saved_model.load(str(base / "retrieval" / "1")).signatures["retrieval"](
        **queries)["scores"].numpy()[:, :10]
    recall = float(np.mean(approx >= exact[:, -1:] - 1e-5))
    assert recall >= 0.9


def test_a_second_export_is_the_next_version(exported, trained_model_dir, small_repo):
    base, _ = exported
    _, _, model = ModelDir(trained_model_dir).restore()
    result = export_models(model, read_catalogue(small_repo / "data").head(300),
                           ModelDir(trained_model_dir).data_end_us(), base, k=5)
    assert result.version == 2
    assert all(versions(base / name) == [1, 2] for name in ARTIFACTS)
    assert read_manifest(base / "item_tower" / "2")["item_count"] == 300


def test_exact_scann_matches_a_numpy_brute_force_oracle():
    rng = np.random.default_rng(0)
    candidates = rng.normal(size=(2_000, 16)).astype(np.float32)
    queries = rng.normal(size=(50, 16)).astype(np.float32)
    ids = np.array([f"item{i}" for i in range(2_000)])
    layer = tfrs.layers.factorized_top_k.ScaNN(**ScannConfig(exact=True).layer_arguments(2_000,
                                                                                        10))
    layer.index(tf.constant(candidates), tf.constant(ids))
    scores, got = layer(tf.constant(queries))
    exact = np.argsort(-(queries @ candidates.T), axis=1)[:, :10]
    assert (got.numpy().astype(str) == ids[exact]).all()
    np.testing.assert_allclose(scores.numpy(), np.take_along_axis(queries @ candidates.T, exact,
                                                                  axis=1), rtol=1e-4)


def test_scann_config_rejects_bad_values():
    with pytest.raises(ConfigError,
                       match=r"^num_leaves must be None or a positive integer, got 0$"):
        ScannConfig(num_leaves=0)
    with pytest.raises(ConfigError, match="cannot exceed num_leaves"):
        ScannConfig(num_leaves=10, num_leaves_to_search=20)
    with pytest.raises(ConfigError, match="at least 16 items"):
        ScannConfig().layer_arguments(5, 3)


def test_versions_ignore_non_numeric_directories_and_failed_stagings_leave_nothing(tmp_path):
    model = tmp_path / "retrieval"
    for name in ("1", "3", "latest", ".tmp-4-x", "0"):
        (model / name).mkdir(parents=True)
    assert versions(model) == [1, 3]
    assert next_version(tmp_path, ["retrieval", "item_tower"]) == 4
    with pytest.raises(RuntimeError):
        with staged_version(model, 4) as staging:
            (staging / "saved_model.pb").write_bytes(b"partial")
            raise RuntimeError("failed load check")
    assert versions(model) == [1, 3]
    assert sorted(p.name for p in model.iterdir()) == [".tmp-4-x", "0", "1", "3", "latest"]
    with pytest.raises(ConfigError, match="never overwritten"):
        with staged_version(model, 3):
            pass


def test_retrieval_pads_when_scann_finds_fewer_than_k(trained_model_dir, small_repo, tmp_path):
    """k close to the catalogue's size: the ScaNN leaves searched may hold fewer than k items;
    the answer keeps its [B, k] shape, padded with "" and -inf."""
    directory = ModelDir(trained_model_dir)
    _, _, model = directory.restore()
    catalogue = read_catalogue(small_repo / "data").head(60)
    result = export_models(model, catalogue, directory.data_end_us(), tmp_path, k=60,
                           scann=ScannConfig(num_leaves=6, num_leaves_to_search=1,
                                             min_recall=0.0))
    loaded = tf.saved_model.load(str(result.paths["retrieval"]))
    query = {s.name: tf.constant([s.missing] if s.width is None else [[s.pad] * s.width],
                                 dtype=getattr(tf, s.dtype))
             for s in query_inputs(model.cfg)}
    out = loaded.signatures["retrieval"](**query)
    ids, scores = out["item_ids"].numpy()[0], out["scores"].numpy()[0]
    assert ids.shape == (60,) and scores.shape == (60,)
    found = ids != b""
    assert 0 < found.sum() < 60  # one leaf of six searched: a part of the catalogue
    assert np.isneginf(scores[~found]).all() and np.isfinite(scores[found]).all()


def test_tie_aware_recall_counts_items_tied_with_the_exact_ones():
    from trainer.export import _recall_at_10, tie_aware_recall

    # 12 items, two pairs of exact duplicates around the 10th place: the index returned the
    # other copy of each pair, so by id it misses 2 of 10, by score none
    exact_ids = np.array([[f"i{j}" for j in range(10)]])
    found_ids = np.array([[*(f"i{j}" for j in range(8)), "i10", "i11"]])
    exact_scores = np.array([[1.0, .9, .8, .7, .6, .5, .4, .3, .2, .2]])
    found_scores = np.array([[1.0, .9, .8, .7, .6, .5, .4, .3, .2, .2]])
    assert _recall_at_10(found_ids, exact_ids) == 0.8
    assert tie_aware_recall(found_scores, exact_scores) == 1.0
    # a result below the 10th best is a miss, even 5e-4 below (neighbouring ranks of unit-norm
    # embeddings differ by about 1e-3); one within rounding (1e-5) is a tie, a hit
    for score in (0.19, 0.2 - 5e-4):
        below = found_scores.copy()
        below[0, 9] = score
        assert tie_aware_recall(below, exact_scores) == 0.9
    close = found_scores.copy()
    close[0, 9] = 0.2 - 5e-6
    assert tie_aware_recall(close, exact_scores) == 1.0
    padded = found_scores.copy()
    padded[0, 8:] = -np.inf
    assert tie_aware_recall(padded, exact_scores) == 0.8
    # at depth 3 the bar is the 3rd best: the 10th place's misses do not count
    assert tie_aware_recall(below, exact_scores, k=3) == 1.0
    shuffled = found_scores[:, [0, 1, 3, 2]]
    assert tie_aware_recall(shuffled, exact_scores, k=3) == pytest.approx(2 / 3)


def test_the_recall_depth_is_the_index_k_unless_set():
    assert ScannConfig().check_depth(200) == 200
    assert ScannConfig(recall_at=10).check_depth(200) == 10
    assert ScannConfig(recall_at=500).check_depth(200) == 200  # a smaller catalogue: all of it
    with pytest.raises(ConfigError, match="recall_at must be None or a positive integer"):
        ScannConfig(recall_at=0)


def test_the_search_widens_re_scoring_first_then_leaves():
    from trainer.export import widened

    args = {"num_leaves": 1000, "num_leaves_to_search": 200, "num_reordering_candidates": 4000}
    steps = [args]
    while len(steps) < 12:
        steps.append(widened(steps[-1], 1_000_000))
    pairs = [(a["num_leaves_to_search"], a["num_reordering_candidates"]) for a in steps]
    # re-scoring doubles up to half the items the 200 leaves hold (100K), then leaves double
    assert pairs[:7] == [(200, 4000), (200, 8000), (200, 16000), (200, 32000), (200, 64000),
                         (200, 128000), (400, 128000)]
    assert pairs[-1] == (1000, 1_000_000)  # ends searching every leaf, re-scoring every item
    small = widened({"num_leaves": 20, "num_leaves_to_search": 4,
                     "num_reordering_candidates": 400}, 400)
    assert (small["num_leaves_to_search"], small["num_reordering_candidates"]) == (8, 400)


def test_a_model_without_id_rows_trains_exports_and_serves_users_by_their_history(
        small_data, small_repo, tmp_path):
    """``user_id_embedding: false`` through training, the export's checks (the ONNX query
    core against the SavedModel included) and the real loader on both runtimes: two known
    users with the same history, context and features get the same query, and the
    manifest records the setting."""
    import dataclasses

    from retrieval_support import small_config

    from recsys.model_contract.query_encoding import QueryEncoding
    from recsys.model_contract.retrieval_config import model_config_of
    from serving.servable import Servable
    from trainer.train import train_retrieval

    base_cfg = small_config(epochs=1)
    cfg = dataclasses.replace(base_cfg, model=dataclasses.replace(base_cfg.model,
                                                                  user_id_embedding=False))
    train_retrieval(small_data, cfg, tmp_path / "model", progress=False)
    directory = ModelDir(tmp_path / "model")
    _, vocab, model = directory.restore()
    assert model.query_tower.user.vocabulary == [] and len(vocab.user_ids) > 1
    queries = small_data.train.sample(64, random_state=3)
    result = export_models(model, read_catalogue(small_repo / "data"), directory.data_end_us(),
                           tmp_path / "models", k=10, queries=queries)
    path = tmp_path / "models" / "retrieval" / str(result.version)
    assert model_config_of(read_manifest(path)).user_id_embedding is False
    fast, own = Servable("retrieval", 1, path), Servable("retrieval", 1, path, onnx=False)
    assert fast.runtime == "onnxruntime"
    assert QueryEncoding.read(path / "assets.extra").strings["user_id"].values == []
    signature = fast.signature("query_embedding")
    row = queries.iloc[0]
    users = vocab.user_ids[:2]
    inputs = {}
    for name, spec in signature.inputs.items():
        value = row[name]
        if spec.shape and len(spec.shape) > 1:  # a list input: the same list for both
            values = [list(value), list(value)]
            width = max(len(v) for v in values)
            inputs[name] = np.asarray(values, dtype=object if spec.dtype == "string"
                                      else spec.dtype).reshape(2, width)
        else:
            inputs[name] = np.asarray(users if name == "user_id" else [value, value],
                                      dtype=object if spec.dtype == "string" else spec.dtype)
    for servable in (fast, own):
        embedding = servable.run(signature, inputs)["embedding"]
        np.testing.assert_allclose(embedding[0], embedding[1], atol=1e-6)


def test_a_model_with_a_sequence_encoder_trains_exports_and_reads_the_order(
        small_data, small_repo, tmp_path):
    """``sequence_blocks: 1`` through training, the export's checks (the ONNX query core
    against the SavedModel included) and the real loader on both runtimes, which agree on
    histories that differ only in their order, and tell them apart."""
    import dataclasses

    from retrieval_support import small_config

    from serving.servable import Servable
    from trainer.train import train_retrieval

    base_cfg = small_config(epochs=1)
    cfg = dataclasses.replace(base_cfg, model=dataclasses.replace(base_cfg.model,
                                                                  sequence_blocks=1))
    train_retrieval(small_data, cfg, tmp_path / "model", progress=False)
    directory = ModelDir(tmp_path / "model")
    _, _, model = directory.restore()
    assert model.query_tower.sequence is not None
    queries = small_data.train[small_data.train["history_item_ids"].map(len) >= 3].sample(
        32, random_state=4)
    result = export_models(model, read_catalogue(small_repo / "data"), directory.data_end_us(),
                           tmp_path / "models", k=10, queries=queries)
    path = tmp_path / "models" / "retrieval" / str(result.version)
    fast, own = Servable("retrieval", 1, path), Servable("retrieval", 1, path, onnx=False)
    assert fast.runtime == "onnxruntime"
    signature = fast.signature("query_embedding")
    from recsys.model_contract.arrays import to_arrays

    inputs = to_arrays(queries.iloc[[0, 0]], query_inputs(model.cfg), "queries")
    inputs = {name: inputs[name] for name in signature.inputs}
    history = inputs["history_item_ids"]
    history[1, [0, 1]] = history[1, [1, 0]]
    fast_out = fast.run(signature, inputs)["embedding"]
    own_out = own.run(signature, inputs)["embedding"]
    np.testing.assert_allclose(fast_out, own_out, atol=1e-5)
    assert not np.allclose(own_out[0], own_out[1], atol=1e-4)
