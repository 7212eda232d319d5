"""Tests of trainer.layers with real TensorFlow: NumPy oracles, configs and SavedModel loads."""

from __future__ import annotations

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow is imported)

# isort: split
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from trainer.layers import HistoryPooling, LogStandardize, LookupEmbedding, fixed_width
from trainer.layers.lookup_embedding import OOV_INDEX, PAD_INDEX

VOCAB = ["apple", "banana", "cherry"]


@pytest.fixture(autouse=True)
def _seed():
    tf.keras.utils.set_random_seed(7)


def _save_and_load(path: Path, layer, function, signature):
    """``function`` (which calls ``layer``) saved as a tf.Module's signature, then loaded."""
    module = tf.Module()
    module.layer = layer
    module.serve = tf.function(function, input_signature=signature)
    tf.saved_model.save(module, str(path))
    return tf.saved_model.load(str(path))


# ---------------------------------------------------------------------------------------------
# LookupEmbedding


def test_padding_unknown_and_known_indices():
    layer = LookupEmbedding(VOCAB, dim=4)
    ids = layer.indices(tf.constant(["", "durian", "apple", "banana", "cherry", "Apple"]))
    assert ids.dtype == tf.int64
    assert ids.numpy().tolist() == [PAD_INDEX, OOV_INDEX, 2, 3, 4, OOV_INDEX]
    assert (PAD_INDEX, OOV_INDEX) == (0, 1)


def test_embeddings_have_the_input_shape_plus_dim():
    layer = LookupEmbedding(VOCAB, dim=5)
    values = tf.constant([["apple", ""], ["durian", "cherry"], ["", ""]])
    out = layer(values)
    assert out.shape == (3, 2, 5) and out.dtype == tf.float32
    assert layer.indices(values).shape == (3, 2)
    # rows are looked up from the embedding table: equal ids give equal vectors
    table = layer.embedding.embeddings.numpy()
    assert table.shape == (len(VOCAB) + 2, 5)
    np.testing.assert_array_equal(out[1, 0], table[OOV_INDEX])
    np.testing.assert_array_equal(out[0, 0], table[2])
    np.testing.assert_array_equal(out[0, 1], out[2, 0])


def test_every_unknown_value_shares_the_unknown_row():
    layer = LookupEmbedding(VOCAB, dim=4)
    out = layer(tf.constant(["durian", "elderberry", "fig"])).numpy()
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_array_equal(out[0], out[2])


def test_empty_vocabulary_maps_everything_to_padding_or_unknown():
    layer = LookupEmbedding([], dim=3)
    values = tf.constant(["", "anything", "\x00no-values-but-other"])
    assert layer.indices(values).numpy().tolist() == [PAD_INDEX, OOV_INDEX, OOV_INDEX]
    out = layer(values)
    assert out.shape == (3, 3)
    assert np.isfinite(out.numpy()).all()


def test_id_dropout_only_while_training_and_never_on_padding():
    layer = LookupEmbedding(VOCAB, dim=4, dropout_rate=0.999)
    values = tf.constant([["apple", "banana", "cherry", "", "durian"]] * 200)
    clean = layer.indices(values).numpy()

    for training in (None, False):
        np.testing.assert_array_equal(layer.indices(values, training=training).numpy(), clean)
        np.testing.assert_array_equal(layer(values, training=training).numpy(),
                                      layer(values).numpy())

    dropped = layer.indices(values, training=True).numpy()
    known = clean >= 2
    assert (dropped[known] == OOV_INDEX).mean() > 0.98  # 600 draws, each kept with p=0.001
    assert (dropped[clean == PAD_INDEX] == PAD_INDEX).all()
    assert (dropped[clean == OOV_INDEX] == OOV_INDEX).all()
    trained = layer(values, training=True).numpy()
    assert trained.shape == (200, 5, 4)


def test_zero_dropout_rate_never_drops_while_training():
    layer = LookupEmbedding(VOCAB, dim=4, dropout_rate=0.0)
    values = tf.constant(VOCAB * 50)
    np.testing.assert_array_equal(layer.indices(values, training=True).numpy(),
                                  layer.indices(values).numpy())


def test_lookup_embedding_config_round_trip():
    layer = LookupEmbedding(VOCAB, dim=6, dropout_rate=0.25, name="item_id")
    config = layer.get_config()
    assert config["vocabulary"] == VOCAB and config["dim"] == 6
    assert config["dropout_rate"] == 0.25 and config["name"] == "item_id"
    clone = LookupEmbedding.from_config(config)
    assert clone.get_config() == config

    values = tf.constant(["", "cherry", "durian"])
    layer(values)
    clone(values)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(values).numpy(), layer(values).numpy())


def test_lookup_embedding_save_load_same_output(tmp_path):
    layer = LookupEmbedding(VOCAB, dim=4, dropout_rate=0.5)
    values = tf.constant([["banana", "", "durian"], ["apple", "cherry", "cherry"]])
    expected = layer(values).numpy()

    loaded = _save_and_load(tmp_path / "lookup", layer, lambda x: layer(x, training=False),
                            [tf.TensorSpec([None, None], tf.string)])
    np.testing.assert_array_equal(loaded.serve(values).numpy(), expected)
    # a different batch and width through the same loaded signature
    np.testing.assert_array_equal(loaded.serve(tf.constant([["cherry"]])).numpy(),
                                  expected[1:, 2:])


# ---------------------------------------------------------------------------------------------
# HistoryPooling


def _pooling_oracle(embeddings: np.ndarray, mask: np.ndarray, decay: float | None) -> np.ndarray:
    """Loop-by-loop masked mean and decay ** i weighted mean."""
    batch, length, dim = embeddings.shape
    out = []
    for b in range(batch):
        rows = []
        weight_sets = [[1.0] * length]
        if decay is not None:
            weight_sets.append([decay ** i for i in range(length)])
        for weights in weight_sets:
            total, summed = 0.0, np.zeros(dim)
            for i in range(length):
                if mask[b, i]:
                    total += weights[i]
                    summed += weights[i] * embeddings[b, i].astype(np.float64)
            rows.append(summed / total if total > 0 else np.zeros(dim))
        out.append(np.concatenate(rows))
    return np.asarray(out)


@pytest.mark.parametrize("decay", [0.5, 0.9, 1.0, None])
def test_history_pooling_matches_the_numpy_oracle(decay):
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(5, 6, 3)).astype(np.float32)
    mask = np.array([
        [True, True, True, True, True, True],
        [True, True, False, False, False, False],
        [False, False, False, False, False, False],  # empty history
        [False, True, False, True, False, True],  # holes: positions still count
        [True, False, False, False, False, False],
    ])
    out = HistoryPooling(decay)(tf.constant(embeddings), tf.constant(mask)).numpy()

    assert out.shape == (5, 3 if decay is None else 6)
    np.testing.assert_allclose(out, _pooling_oracle(embeddings, mask, decay), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(out[2], 0.0)
    assert np.isfinite(out).all()


def test_history_pooling_ignores_masked_entries_values():
    embeddings = np.ones((1, 3, 2), np.float32)
    noisy = embeddings.copy()
    noisy[0, 2] = 1e6
    mask = tf.constant([[True, True, False]])
    pooling = HistoryPooling(0.8)
    np.testing.assert_array_equal(pooling(tf.constant(embeddings), mask).numpy(),
                                  pooling(tf.constant(noisy), mask).numpy())
    np.testing.assert_allclose(pooling(tf.constant(embeddings), mask).numpy(), 1.0, rtol=1e-6)


def test_history_pooling_of_zero_length_sequence_is_zeros():
    out = HistoryPooling(0.9)(tf.zeros([2, 0, 3]), tf.zeros([2, 0], tf.bool))
    assert out.shape == (2, 6)
    np.testing.assert_array_equal(out.numpy(), 0.0)


@pytest.mark.parametrize("decay", [0.7, None])
def test_history_pooling_config_round_trip(decay):
    layer = HistoryPooling(decay, name="pool")
    config = layer.get_config()
    assert config["decay"] == decay
    assert HistoryPooling.from_config(config).get_config() == config


def test_history_pooling_save_load_same_output(tmp_path):
    layer = HistoryPooling(0.9)
    rng = np.random.default_rng(1)
    embeddings = tf.constant(rng.normal(size=(3, 4, 2)).astype(np.float32))
    mask = tf.constant([[True, True, False, False], [False] * 4, [True] * 4])
    expected = layer(embeddings, mask).numpy()

    loaded = _save_and_load(tmp_path / "pool", layer, layer.__call__,
                            [tf.TensorSpec([None, None, 2], tf.float32),
                             tf.TensorSpec([None, None], tf.bool)])
    np.testing.assert_allclose(loaded.serve(embeddings, mask).numpy(), expected, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# fixed_width


def test_fixed_width_truncates_and_pads():
    values = tf.constant([["a", "b", "c", "d"], ["e", "", "", ""]])
    assert fixed_width(values, 2, "").numpy().tolist() == [[b"a", b"b"], [b"e", b""]]
    assert fixed_width(values, 4, "").numpy().tolist() == values.numpy().tolist()
    assert fixed_width(values, 6, "-").numpy().tolist() == [
        [b"a", b"b", b"c", b"d", b"-", b"-"], [b"e", b"", b"", b"", b"-", b"-"]]


def test_fixed_width_of_width_zero_input_is_all_padding():
    out = fixed_width(tf.zeros([3, 0], tf.float32), 4, 0.5)
    assert out.shape == (3, 4)
    np.testing.assert_array_equal(out.numpy(), 0.5)
    strings = fixed_width(tf.constant([[], []], tf.string), 2, "")
    assert strings.numpy().tolist() == [[b"", b""], [b"", b""]]


def test_fixed_width_has_a_static_width_inside_a_function():
    function = tf.function(lambda x: fixed_width(x, 5, ""),
                           input_signature=[tf.TensorSpec([None, None], tf.string)])
    graph_output = function.get_concrete_function().structured_outputs
    assert graph_output.shape.as_list() == [None, 5]
    assert function(tf.constant([["x"] * 9])).shape == (1, 5)
    assert function(tf.zeros([1, 0], tf.string)).shape == (1, 5)


def test_fixed_width_save_load_same_output(tmp_path):
    loaded = _save_and_load(tmp_path / "width", tf.Module(), lambda x: fixed_width(x, 3, ""),
                            [tf.TensorSpec([None, None], tf.string)])
    for values in ([["a", "b", "c", "d", "e"]], [["a"]], [[], []]):
        tensor = tf.constant(values, tf.string)
        np.testing.assert_array_equal(loaded.serve(tensor).numpy(),
                                      fixed_width(tensor, 3, "").numpy())


# ---------------------------------------------------------------------------------------------
# LogStandardize

STATS = {"clicks": (1.5, 0.75), "balance": (-0.2, 2.0)}


def _log_standardize_oracle(features: dict, stats: dict) -> np.ndarray:
    columns = []
    for name, (mean, std) in stats.items():
        x = np.asarray(features[name], np.float64)
        missing = np.isnan(x)
        scaled = (np.sign(x) * np.log1p(np.abs(x)) - mean) / std
        columns.append(np.where(missing, 0.0, scaled))
        columns.append(missing.astype(np.float64))
    return np.stack(columns, axis=-1)


def _numeric_features() -> dict[str, np.ndarray]:
    return {"clicks": np.array([0.0, 3.0, np.nan, 120.0, 1e6], np.float32),
            "balance": np.array([-50.0, np.nan, 0.5, 2.0, np.nan], np.float32),
            "ignored": np.array([np.nan] * 5, np.float32)}


def test_log_standardize_matches_the_numpy_oracle():
    features = _numeric_features()
    out = LogStandardize(STATS)({k: tf.constant(v) for k, v in features.items()}).numpy()

    assert out.shape == (5, 4) and out.dtype == np.float32
    np.testing.assert_allclose(out, _log_standardize_oracle(features, STATS), rtol=1e-5,
                               atol=1e-6)
    assert np.isfinite(out).all()
    # NaN -> value 0 with the missing flag 1; present values have flag 0
    assert out[2, 0] == 0.0 and out[2, 1] == 1.0
    assert out[1, 2] == 0.0 and out[1, 3] == 1.0
    assert out[0, 1] == 0.0 and out[0, 3] == 0.0


def test_log_standardize_casts_integer_inputs():
    out = LogStandardize({"n": (0.0, 1.0)})({"n": tf.constant([0, 1, 9], tf.int64)}).numpy()
    np.testing.assert_allclose(out[:, 0], np.log1p([0.0, 1.0, 9.0]), rtol=1e-6)
    np.testing.assert_array_equal(out[:, 1], 0.0)


def test_log_standardize_config_round_trip():
    layer = LogStandardize(STATS, name="numeric")
    config = layer.get_config()
    assert dict(config["stats"]) == {"clicks": (1.5, 0.75), "balance": (-0.2, 2.0)}
    clone = LogStandardize.from_config(config)
    assert clone.get_config() == config
    assert list(clone.stats) == ["clicks", "balance"]  # column order is kept

    features = {k: tf.constant(v) for k, v in _numeric_features().items()}
    np.testing.assert_array_equal(clone(features).numpy(), layer(features).numpy())


def test_log_standardize_save_load_same_output(tmp_path):
    layer = LogStandardize(STATS)
    features = {k: tf.constant(v) for k, v in _numeric_features().items() if k in STATS}
    expected = layer(features).numpy()

    loaded = _save_and_load(tmp_path / "numeric", layer, layer.__call__,
                            [{name: tf.TensorSpec([None], tf.float32) for name in STATS}])
    np.testing.assert_allclose(loaded.serve(features).numpy(), expected, rtol=1e-6)
