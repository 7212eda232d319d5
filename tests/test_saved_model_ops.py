"""Tests of recsys.model_contract.saved_model_ops on real SavedModels written by the tests
themselves."""

from __future__ import annotations

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow is imported)

# isort: split
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_recommenders as tfrs
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

from recsys.errors import RecsysError
from recsys.model_contract.saved_model_ops import (
    REQUIRED_IMPORTS,
    SavedModelError,
    TensorInfo,
    format_report,
    inspect_saved_model,
)

SCANN_OPS = ("Scann>ScannSearchBatched", "Scann>TensorsToScann")
EMBEDDING_DIM = 4
K = 3


class _Scaler(tf.Module):
    """The smallest stock model: one variable, one named signature."""

    def __init__(self) -> None:
        super().__init__()
        self.factor = tf.Variable(2.0)

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def scale(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": x * self.factor, "total": tf.reduce_sum(x)}


def _candidates() -> tuple[tf.Tensor, tf.Tensor]:
    rng = np.random.default_rng(7)
    embeddings = tf.constant(rng.normal(size=(20, EMBEDDING_DIM)).astype("float32"))
    identifiers = tf.constant([f"item-{i}" for i in range(20)])
    return embeddings, identifiers


def _save_index(layer: tfrs.layers.factorized_top_k.TopK, path: Path) -> Path:
    """Indexes, calls once, and saves ``layer`` with a named ``retrieval`` signature."""
    layer.index(*_candidates())
    layer(tf.zeros([1, EMBEDDING_DIM]))

    @tf.function(input_signature=[
        tf.TensorSpec([None, EMBEDDING_DIM], tf.float32, name="query_embedding")])
    def retrieval(query_embedding: tf.Tensor) -> dict[str, tf.Tensor]:
        scores, identifiers = layer(query_embedding)
        return {"scores": scores, "identifiers": identifiers}

    tf.saved_model.save(layer, str(path), signatures={"retrieval": retrieval},
                        options=tf.saved_model.SaveOptions(namespace_whitelist=["Scann"]))
    return path


@pytest.fixture(scope="module")
def stock_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stock") / "model"
    module = _Scaler()
    tf.saved_model.save(module, str(path), signatures={"scale": module.scale})
    return path


@pytest.fixture(scope="module")
def scann_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    layer = tfrs.layers.factorized_top_k.ScaNN(
        k=K, num_leaves=2, num_leaves_to_search=2, num_reordering_candidates=10)
    return _save_index(layer, tmp_path_factory.mktemp("scann") / "model")


@pytest.fixture(scope="module")
def brute_force_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    layer = tfrs.layers.factorized_top_k.BruteForce(k=K)
    return _save_index(layer, tmp_path_factory.mktemp("brute_force") / "model")


def test_stock_module_needs_no_custom_ops(stock_model: Path) -> None:
    report = inspect_saved_model(stock_model)

    assert report.path == stock_model
    assert report.custom_ops == ()
    assert report.namespaces == ()
    assert report.required_imports == {}
    assert report.stock_serving_loadable
    assert {"Mul", "Sum", "ReadVariableOp", "StatefulPartitionedCall"} <= set(report.ops)
    assert list(report.ops) == sorted(set(report.ops))
    assert not any(op.startswith("__inference") for op in report.ops)  # function names
    assert dict(report.signatures) == {
        "scale": (
            {"x": ("float32", (-1, 3))},
            {"total": ("float32", ()), "y": ("float32", (-1, 3))},
        ),
    }
    assert report.signatures["scale"].inputs["x"] == TensorInfo("float32", (-1, 3))
    text = format_report(report)
    assert "(custom: none)" in text
    assert "stock TF Serving: can load" in text
    assert "  scale:\n    inputs: x float32[-1, 3]\n" in text
    assert "outputs: total float32[], y float32[-1, 3]" in text


def test_report_is_frozen(stock_model: Path) -> None:
    report = inspect_saved_model(stock_model)
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.ops = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        report.signatures["other"] = report.signatures["scale"]  # type: ignore[index]


def test_scann_layer_needs_scann_ops(scann_model: Path) -> None:
    # This process imported scann (through TFRS), so the Scann ops ARE registered here: the
    # namespace rule, not the registry, must be what makes them custom.
    assert "scann" in sys.modules
    assert op_def_registry.get("Scann>ScannSearchBatched") is not None

    report = inspect_saved_model(scann_model)

    assert report.custom_ops == SCANN_OPS
    assert set(SCANN_OPS) <= set(report.ops)
    assert report.namespaces == ("Scann",)
    assert report.required_imports == {"Scann": "scann"} == dict(REQUIRED_IMPORTS)
    assert not report.stock_serving_loadable
    # The Scann ops have no shape function: the outputs' rank is unknown in the signature.
    assert dict(report.signatures) == {
        "retrieval": (
            {"query_embedding": ("float32", (-1, EMBEDDING_DIM))},
            {"identifiers": ("string", None), "scores": ("float32", None)},
        ),
    }
    text = format_report(report)
    assert f"ops: {len(report.ops)} (custom: {', '.join(SCANN_OPS)})\n" in text
    assert ("stock TF Serving: cannot load (needs custom ops from namespace Scann; import scann "
            "before tf.saved_model.load)\n") in text
    assert "inputs: query_embedding float32[-1, 4]" in text
    assert "outputs: identifiers string[unknown rank], scores float32[unknown rank]" in text


def test_brute_force_layer_is_stock(brute_force_model: Path) -> None:
    report = inspect_saved_model(brute_force_model)

    assert report.custom_ops == ()
    assert report.stock_serving_loadable
    assert "TopKV2" in report.ops
    assert dict(report.signatures) == {
        "retrieval": (
            {"query_embedding": ("float32", (-1, EMBEDDING_DIM))},
            {"identifiers": ("string", (-1, K)), "scores": ("float32", (-1, K))},
        ),
    }


def test_op_missing_from_registry_is_custom(stock_model: Path, tmp_path: Path) -> None:
    """An op without a namespace is custom when this TensorFlow does not register it."""
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((stock_model / "saved_model.pb").read_bytes())
    renamed = 0
    for function in proto.meta_graphs[0].graph_def.library.function:
        for node in function.node_def:
            if node.op == "Mul":
                node.op = "RecsysTestOnlyMul"
                renamed += 1
    assert renamed
    (tmp_path / "saved_model.pb").write_bytes(proto.SerializeToString())

    report = inspect_saved_model(tmp_path)

    assert report.custom_ops == ("RecsysTestOnlyMul",)
    assert report.namespaces == ()
    assert not report.stock_serving_loadable
    assert "needs ops this TensorFlow does not register: RecsysTestOnlyMul" in format_report(
        report)


_FRESH_PROCESS = """
import json, sys
from pathlib import Path
from recsys.model_contract.saved_model_ops import inspect_saved_model
from tensorflow.python.framework import op_def_registry
report = inspect_saved_model(Path(sys.argv[1]))
print(json.dumps({
    "custom_ops": report.custom_ops,
    "namespaces": report.namespaces,
    "stock_serving_loadable": report.stock_serving_loadable,
    "scann_imported": "scann" in sys.modules,
    "tfrs_imported": "tensorflow_recommenders" in sys.modules,
    "scann_op_registered": op_def_registry.get("Scann>ScannSearchBatched") is not None,
}))
"""


@pytest.mark.slow
def test_inspects_scann_model_in_process_without_scann(scann_model: Path) -> None:
    code = "import recsys\n" + _FRESH_PROCESS
    out = subprocess.run([sys.executable, "-c", code, str(scann_model)], check=False,
                         capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])

    assert result == {
        "custom_ops": list(SCANN_OPS),
        "namespaces": ["Scann"],
        "stock_serving_loadable": False,
        "scann_imported": False,
        "tfrs_imported": False,
        "scann_op_registered": False,
    }


def _missing(tmp_path: Path) -> Path:
    return tmp_path / "nope"


def _a_file(tmp_path: Path) -> Path:
    (tmp_path / "model.pb").write_bytes(b"x")
    return tmp_path / "model.pb"


def _no_pb(tmp_path: Path) -> Path:
    (tmp_path / "variables").mkdir()
    return tmp_path


def _garbage(tmp_path: Path) -> Path:
    (tmp_path / "saved_model.pb").write_bytes(b"this is not a proto \x00\xff\xfe" * 4)
    return tmp_path


def _empty(tmp_path: Path) -> Path:
    (tmp_path / "saved_model.pb").write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize("make, message", [
    (_missing, "SavedModel directory {path} does not exist"),
    (_a_file, "SavedModel path {path} is a file, not a directory"),
    (_no_pb, "{path} is not a SavedModel directory: it has no saved_model.pb"),
    (_garbage, "{path}/saved_model.pb is not a SavedModel proto (92 bytes that do not parse"),
    (_empty, "{path}/saved_model.pb is not a SavedModel proto: it holds no meta graph (0 bytes)"),
], ids=["missing", "file", "no-pb", "garbage", "empty"])
def test_bad_paths_raise_clear_errors(make, message: str, tmp_path: Path) -> None:
    path = make(tmp_path)
    with pytest.raises(SavedModelError) as excinfo:
        inspect_saved_model(path)
    assert message.format(path=path) in str(excinfo.value)
    assert isinstance(excinfo.value, RecsysError)
