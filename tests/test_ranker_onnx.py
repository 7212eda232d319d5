"""The ranker on ONNX Runtime: the export writes the numeric core as ONNX with its
vocabularies, the NumPy lookups give exactly the model's own, and the servable's ``rank`` on
ONNX Runtime gives the SavedModel's outputs and order."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from recsys.model_contract.ranker_encoding import CORE_FILE, RankerEncoding, Vocabulary
from serving.errors import Code, ServingError
from serving.servable import Servable


def test_vocabulary_numbers_values_as_string_lookup_does():
    vocabulary = Vocabulary(["a", "b"])
    np.testing.assert_array_equal(vocabulary(np.array([["", "a"], ["b", "zzz"]], object)),
                                  [[0, 2], [3, 1]])
    assert Vocabulary([])(np.array(["x", ""], object)).tolist() == [1, 0]
    assert vocabulary(np.array([b"b", b"", b"c"], object)).tolist() == [3, 0, 1]  # bytes too
    with pytest.raises(ValueError, match="twice"):
        Vocabulary(["a", "a"])


def _requests(encoding: RankerEncoding, groups: int, rows: int, rng: np.random.Generator,
              signature) -> dict[str, np.ndarray]:
    """``groups`` requests of ``rows`` candidates each, rows of one request sharing its user's
    history (as the service sends them): known and unknown ids, empty values, lists shorter
    and longer than the model's width, NaN gaps, many tags."""
    known = encoding.items.values[:50]
    pool = known + ["never-seen", ""]
    categories = encoding.categories.values + ["new-category", ""]
    tags = encoding.tags.values + ["new-tag"]
    width = encoding.history_length + 3
    batch: dict[str, list] = {name: [] for name in signature.inputs}
    for _ in range(groups):
        length = int(rng.integers(0, width))
        history = list(rng.choice(pool, length)) + [""] * (width - length)
        history_categories = list(rng.choice(categories, width))
        gaps = rng.uniform(0, 1e6, width).astype(np.float32)
        gaps[rng.random(width) < 0.2] = np.nan
        context = {n: rng.choice(v.values + ["elsewhere", ""])
                   for n, v in encoding.context.items()}
        for _ in range(rows):
            batch["history_item_ids"].append(history)
            batch["history_categories"].append(history_categories)
            batch["history_gaps_s"].append(gaps)
            batch["item_id"].append(rng.choice(pool))
            batch["item_category"].append(rng.choice(categories))
            item_tags = list(rng.choice(tags, int(rng.integers(0, 13))))
            batch["item_tags"].append(item_tags + [""] * (12 - len(item_tags)))
            for name, value in context.items():
                batch[name].append(value)
            for name, spec in signature.inputs.items():
                if name in batch and len(batch[name]) < len(batch["item_id"]):
                    if spec.dtype.startswith("int"):
                        batch[name].append(int(rng.integers(0, 30)))
                    else:
                        value = float(rng.normal(3.0, 2.0))
                        batch[name].append(np.nan if rng.random() < 0.1 else value)
    arrays = {}
    for name, values in batch.items():
        spec = signature.inputs[name]
        dtype = object if spec.dtype == "string" else spec.dtype
        arrays[name] = np.asarray(values, dtype=dtype)
    return arrays


def test_the_export_holds_the_core_and_its_vocabularies(service_files):
    extra = service_files.base / "ranker" / "1" / "assets.extra"
    assert (extra / CORE_FILE).is_file()
    encoding = RankerEncoding.read(extra)
    assert len(encoding.items.values) > 0 and encoding.history_length == 10


def test_numpy_lookups_equal_the_models_own(service_files, trained_ranker):
    from trainer.ranking.ranker_dir import RankerDir

    model = RankerDir(trained_ranker.ranker_dir).restore()
    extra = service_files.base / "ranker" / "1" / "assets.extra"
    encoding = RankerEncoding.read(extra)
    signature = Servable("ranker", 1, service_files.base / "ranker" / "1",
                         onnx=False).signature("rank")
    inputs = _requests(encoding, groups=4, rows=6, rng=np.random.default_rng(3),
                       signature=signature)
    expected = model.encode({k: tf.constant(v) for k, v in inputs.items()}, training=False)
    got = encoding.encode(inputs)
    assert set(got) == set(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value.numpy(), err_msg=name)


@pytest.mark.parametrize("groups, rows", [(1, 1), (1, 200), (3, 7)])
def test_rank_on_onnx_runtime_gives_the_savedmodels_outputs(service_files, groups, rows):
    path = service_files.base / "ranker" / "1"
    fast, own = Servable("ranker", 1, path), Servable("ranker", 1, path, onnx=False)
    assert fast.runtime == "onnxruntime" and own.runtime == "tensorflow"
    signature = fast.signature("rank")
    inputs = _requests(RankerEncoding.read(path / "assets.extra"), groups, rows,
                       np.random.default_rng(groups * 100 + rows), signature)
    got, expected = fast.run(signature, inputs), own.run(signature, inputs)
    assert set(got) == set(expected) == {"click", "watch", "score"}
    for name in got:
        assert got[name].shape == expected[name].shape and got[name].dtype == np.float32
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-4, atol=1e-4,
                                   err_msg=name)
    only = fast.run(signature, inputs, ("click",))  # an output filter, as the service asks
    assert set(only) == {"click"}
    np.testing.assert_array_equal(only["click"], got["click"])
    # the same order wherever the scores are not within rounding of each other
    for start in range(0, groups * rows, rows):
        a, b = got["click"][start:start + rows], expected["click"][start:start + rows]
        order = np.argsort(-b, kind="stable")
        assert np.all(np.diff(a[order]) <= 2e-4)


def test_a_bad_input_is_refused_on_onnx_runtime_too(service_files):
    servable = Servable("ranker", 1, service_files.base / "ranker" / "1")
    signature = servable.signature("rank")
    inputs = _requests(RankerEncoding.read(service_files.base / "ranker" / "1" /
                                           "assets.extra"), 1, 3,
                       np.random.default_rng(1), signature)
    inputs["history_item_ids"] = inputs["history_item_ids"][:, 0]
    with pytest.raises(ServingError) as error:
        servable.run(signature, inputs)
    assert error.value.code == Code.INVALID_ARGUMENT
    assert "history_item_ids must have rank 2" in str(error.value)
