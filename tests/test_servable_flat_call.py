"""The servable's flat call of a signature (inputs in flat order, no per-call binding) gives
exactly what the SavedModel's own signature call gives, for every signature the service uses;
and a bad input is still refused with TF Serving's wording."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from serving.errors import ServingError
from serving.servable import Servable


def _inputs(signature, rows: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    arrays = {}
    for name, spec in signature.inputs.items():
        shape = [rows if d in (-1, None) else d for d in (spec.shape or (-1,))]
        if spec.dtype == "string":
            values = rng.choice(["", "i0001", "i0002", "drama", "US", "mobile"], size=shape)
            arrays[name] = values.astype(object)
        elif spec.dtype.startswith("int"):
            arrays[name] = rng.integers(0, 7, size=shape).astype(spec.dtype)
        else:
            arrays[name] = rng.normal(size=shape).astype(spec.dtype)
    return arrays


@pytest.mark.parametrize("model, signature_name", [
    ("retrieval", "retrieval"), ("retrieval", "query_embedding"), ("item_tower", "item_tower"),
    ("ranker", "rank")])
def test_the_flat_call_equals_the_signature_call(service_files, model, signature_name):
    path = service_files.base / model / "1"
    servable = Servable(model, 1, path, onnx=False)  # the TensorFlow path, not ONNX Runtime
    assert servable._flat[signature_name] is not None  # this TensorFlow has the flat call
    signature = servable.signature(signature_name)
    own = tf.saved_model.load(str(path)).signatures[signature_name]
    rng = np.random.default_rng(7)
    for rows in (1, 5):
        inputs = _inputs(signature, rows, rng)
        got = servable.run(signature, inputs)
        expected = own(**{k: tf.constant(v) for k, v in inputs.items()})
        assert set(got) == set(expected)
        for name, value in got.items():
            np.testing.assert_array_equal(value, expected[name].numpy(), err_msg=name)


def test_a_bad_input_is_refused_before_the_flat_call(service_files):
    servable = Servable("ranker", 1, service_files.base / "ranker" / "1", onnx=False)
    signature = servable.signature("rank")
    inputs = _inputs(signature, 3, np.random.default_rng(1))
    inputs["hour_of_day"] = np.array(["noon"] * 3, dtype=object)
    with pytest.raises(ServingError, match="Expects input hour_of_day to be int"):
        servable.run(signature, inputs)
