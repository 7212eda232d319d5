"""Retrieval without TensorFlow's per-op dispatch: the export writes the query tower's numeric
core as ONNX with its vocabularies, the NumPy lookups give exactly the tower's own, and the
servable's ``retrieval`` and ``query_embedding`` (the tower on ONNX Runtime, the export's own
ScaNN searcher held once) give the SavedModel's outputs."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import tensorflow as tf

from recsys.model_contract.query_encoding import QUERY_CORE_FILE, QueryEncoding
from serving.errors import Code, ServingError
from serving.servable import Servable


def same_ranking(ids: np.ndarray, expected_ids: np.ndarray, expected_scores: np.ndarray,
                 tolerance: float = 1e-4) -> bool:
    """``ids`` equal ``expected_ids`` except inside runs of scores within ``tolerance`` of
    each other (near-ties that float32 rounding may order either way), where the ids must
    be the same set; the last run is not compared (items past the k-th may tie with it)."""
    for row, want, scores in zip(ids, expected_ids, expected_scores):
        breaks = np.flatnonzero(np.abs(np.diff(scores)) > tolerance) + 1
        for start, end in zip([0, *breaks[:-1]], breaks):
            if sorted(row[start:end]) != sorted(want[start:end]):
                return False
    return True


def _queries(encoding: QueryEncoding, rows: int, rng: np.random.Generator,
             signature) -> dict[str, np.ndarray]:
    """``rows`` queries: known, unknown and missing users and items, histories shorter and
    longer than the tower's width (even empty), NaN gaps, context values in and out of the
    vocabularies, missing numeric features."""
    items = encoding.items.values[:60] + ["never-seen", ""]
    categories = encoding.categories.values + ["new-category"]
    width = encoding.history_length + 4
    arrays: dict[str, np.ndarray] = {}
    lengths = rng.integers(0, width + 1, rows)
    lengths[0] = 0  # a cold-start user
    history = np.full((rows, width), "", dtype=object)
    history_categories = np.full((rows, width), "", dtype=object)
    gaps = np.zeros((rows, width), np.float32)
    for row, length in enumerate(lengths):
        history[row, :length] = rng.choice(items, length)
        history_categories[row, :length] = rng.choice(categories, length)
        gaps[row, :length] = np.sort(rng.uniform(0, 1e7, length))
        gaps[row, rng.random(width) < 0.15] = np.nan
    arrays.update(history_item_ids=history, history_categories=history_categories,
                  history_gaps_s=gaps)
    for name, spec in signature.inputs.items():
        if name in arrays:
            continue
        if spec.dtype == "string":
            known = encoding.strings[name].values[:30]
            arrays[name] = np.asarray(rng.choice(known + ["elsewhere", ""], rows), object)
        elif spec.dtype.startswith("int"):
            arrays[name] = rng.integers(-3, 30, rows).astype(spec.dtype)
        else:
            values = rng.lognormal(2.0, 1.5, rows).astype(np.float32)
            values[rng.random(rows) < 0.2] = np.nan
            arrays[name] = values
    return arrays


def _retrieval_path(service_files):
    return service_files.base / "retrieval" / "1"


def test_the_export_holds_the_query_core_and_its_vocabularies(service_files):
    extra = _retrieval_path(service_files) / "assets.extra"
    assert (extra / QUERY_CORE_FILE).is_file()
    encoding = QueryEncoding.read(extra)
    assert encoding.items.values and "user_id" in encoding.strings
    # the portable artifact (brute force, for stock TF Serving) is left as it was
    assert not (service_files.base / "retrieval_portable" / "1" / "assets.extra" /
                QUERY_CORE_FILE).exists()


def test_numpy_lookups_equal_the_towers_own(service_files, trained_model_dir):
    from trainer.model_dir import ModelDir

    _, _, model = ModelDir(trained_model_dir).restore()
    path = _retrieval_path(service_files)
    encoding = QueryEncoding.read(path / "assets.extra")
    signature = Servable("retrieval", 1, path, onnx=False).signature("retrieval")
    inputs = _queries(encoding, 24, np.random.default_rng(5), signature)
    expected = model.query_tower.encode({k: tf.constant(v) for k, v in inputs.items()},
                                        training=False)
    got = encoding.encode(inputs)
    assert set(got) == set(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value.numpy(), err_msg=name)


@pytest.mark.parametrize("rows", [1, 9])
def test_retrieval_on_onnx_runtime_gives_the_savedmodels_outputs(service_files, rows):
    path = _retrieval_path(service_files)
    fast, own = Servable("retrieval", 1, path), Servable("retrieval", 1, path, onnx=False)
    assert fast.runtime == "onnxruntime" and own.runtime == "tensorflow"
    signature = fast.signature("retrieval")
    inputs = _queries(QueryEncoding.read(path / "assets.extra"), rows,
                      np.random.default_rng(rows), signature)
    got, expected = fast.run(signature, inputs), own.run(signature, inputs)
    assert set(got) == set(expected) == {"item_ids", "scores", "query_embedding"}
    for name in got:
        assert got[name].shape == expected[name].shape, name
        assert got[name].dtype == expected[name].dtype, name
    np.testing.assert_allclose(got["query_embedding"], expected["query_embedding"],
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["scores"], expected["scores"], rtol=1e-4, atol=1e-5)
    assert same_ranking(got["item_ids"], expected["item_ids"], expected["scores"])
    # the test platform's index is exact (every leaf searched, every item re-scored): the
    # same ids wherever scores are not tied; the export checks an approximate one by score
    # the same signature by its default name, and an output filter as the service asks
    only = fast.run(fast.signature(None), inputs, ("item_ids",))
    assert set(only) == {"item_ids"}
    np.testing.assert_array_equal(only["item_ids"], got["item_ids"])


def test_query_embedding_on_onnx_runtime_gives_the_savedmodels(service_files):
    path = _retrieval_path(service_files)
    fast, own = Servable("retrieval", 1, path), Servable("retrieval", 1, path, onnx=False)
    signature = fast.signature("query_embedding")
    inputs = _queries(QueryEncoding.read(path / "assets.extra"), 6,
                      np.random.default_rng(8), signature)
    got, expected = fast.run(signature, inputs), own.run(signature, inputs)
    assert set(got) == {"embedding"}
    np.testing.assert_allclose(got["embedding"], expected["embedding"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got["embedding"], axis=1), 1.0, atol=1e-5)


def test_an_export_without_a_query_core_serves_on_tensorflow(service_files, tmp_path):
    """A version exported before the query core existed (or by hand) still serves."""
    path = tmp_path / "1"
    shutil.copytree(_retrieval_path(service_files), path)
    (path / "assets.extra" / QUERY_CORE_FILE).unlink()
    servable = Servable("retrieval", 1, path)
    assert servable.runtime == "tensorflow"
    signature = servable.signature("retrieval")
    inputs = _queries(QueryEncoding.read(path / "assets.extra"), 2,
                      np.random.default_rng(2), signature)
    assert servable.run(signature, inputs)["item_ids"].shape == (2, 50)


def test_a_bad_input_is_refused_on_onnx_runtime_too(service_files):
    servable = Servable("retrieval", 1, _retrieval_path(service_files))
    signature = servable.signature("retrieval")
    inputs = _queries(QueryEncoding.read(_retrieval_path(service_files) / "assets.extra"),
                      2, np.random.default_rng(1), signature)
    inputs["history_item_ids"] = inputs["history_item_ids"][:, 0]
    with pytest.raises(ServingError) as error:
        servable.run(signature, inputs)
    assert error.value.code == Code.INVALID_ARGUMENT
    assert "history_item_ids must have rank 2" in str(error.value)


def test_same_ranking_allows_near_ties_only():
    scores = np.array([[0.9, 0.8, 0.8 - 1e-6, 0.5, 0.4]], np.float32)
    want = np.array([["a", "b", "c", "d", "e"]], object)
    assert same_ranking(want, want, scores)
    assert same_ranking(np.array([["a", "c", "b", "d", "e"]], object), want, scores)
    assert not same_ranking(np.array([["b", "a", "c", "d", "e"]], object), want, scores)
    assert not same_ranking(np.array([["a", "b", "c", "x", "e"]], object), want, scores)


def test_the_export_refuses_a_query_core_that_does_not_give_the_towers_embeddings(
        service_files, trained_model_dir, tmp_path):
    """A core converted from another tower (untrained weights) is caught by the export's
    check before anything is published."""
    from recsys.model_contract.feature_spec import query_inputs
    from trainer.export import ExportError, _stage_onnx_query
    from trainer.model_dir import ModelDir
    from trainer.onnx_convert import example_inputs
    from trainer.query_tower import QueryTower

    _, _, model = ModelDir(trained_model_dir).restore()
    other = QueryTower(model.query_tower.cfg, model.query_tower.vocab)
    other(example_inputs(query_inputs(other.cfg)))
    staging = tmp_path / "1"
    shutil.copytree(_retrieval_path(service_files), staging)
    signature = Servable("retrieval", 1, staging, onnx=False).signature("retrieval")
    inputs = _queries(QueryEncoding.read(staging / "assets.extra"), 8,
                      np.random.default_rng(4), signature)
    with pytest.raises(ExportError, match="embeddings differ from the SavedModel's"):
        _stage_onnx_query(other, staging, {k: tf.constant(v) for k, v in inputs.items()}, 50)
    _stage_onnx_query(model.query_tower, staging,  # the right tower passes the same check
                      {k: tf.constant(v) for k, v in inputs.items()}, 50)


def test_the_export_refuses_an_onnx_search_that_finds_other_items(
        service_files, trained_model_dir, tmp_path, monkeypatch):
    """The search half of the check is made on the SavedModel's own embeddings, so it holds
    for approximate indexes whatever the float rounding; a search that returns lower-scored
    items than the signature's fails it."""
    from recsys.model_contract.onnx_retrieval import OnnxRetrieval
    from trainer.export import ExportError, _stage_onnx_query
    from trainer.model_dir import ModelDir

    _, _, model = ModelDir(trained_model_dir).restore()
    staging = tmp_path / "1"
    shutil.copytree(_retrieval_path(service_files), staging)
    signature = Servable("retrieval", 1, staging, onnx=False).signature("retrieval")
    inputs = {k: tf.constant(v) for k, v in _queries(
        QueryEncoding.read(staging / "assets.extra"), 8, np.random.default_rng(5),
        signature).items()}
    search = OnnxRetrieval.search

    def worse_search(self, embedding):
        ids, scores = search(self, embedding)
        return ids, scores - 1.0

    monkeypatch.setattr(OnnxRetrieval, "search", worse_search)
    with pytest.raises(ExportError, match="search finds other items"):
        _stage_onnx_query(model.query_tower, staging, inputs, 50)
