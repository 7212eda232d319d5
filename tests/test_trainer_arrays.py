"""Tests of recsys.model_contract.arrays (tables to tower inputs) and trainer.vocabularies."""

from __future__ import annotations

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow is imported)

# isort: split
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from recsys.errors import SchemaError, SourceError
from recsys.model_contract.arrays import US_PER_DAY, take, to_arrays, with_item_age
from recsys.model_contract.feature_spec import InputSpec, candidate_inputs, query_inputs
from recsys.model_contract.retrieval_config import RetrievalModelConfig
from trainer.vocabularies import Vocabularies, log_stats, vocabulary

NAN = np.nan

# ---------------------------------------------------------------------------------------------
# to_arrays


def test_scalars_keep_row_order_and_get_missing_markers():
    frame = pd.DataFrame({
        "user_id": ["u1", None, NAN, 7],
        "hour_of_day": [13, None, NAN, 2],
        "user_ctr_30d": [0.5, None, NAN, "oops"],
    })
    out = to_arrays(frame, [InputSpec("user_id", "string"), InputSpec("hour_of_day", "int64"),
                            InputSpec("user_ctr_30d", "float32")])

    assert set(out) == {"user_id", "hour_of_day", "user_ctr_30d"}
    assert out["user_id"].dtype == object
    assert out["user_id"].tolist() == ["u1", "", "", "7"]
    assert out["hour_of_day"].dtype == np.int64
    assert out["hour_of_day"].tolist() == [13, 0, 0, 2]
    assert out["user_ctr_30d"].dtype == np.float32
    np.testing.assert_array_equal(out["user_ctr_30d"], [0.5, NAN, NAN, NAN])


def test_string_lists_are_truncated_padded_and_missing_entries_blanked():
    frame = pd.DataFrame({"history_item_ids": [
        ["a", "b", "c", "d", "e"],  # truncated, keeping the most recent first
        ["a", None, "b"],  # a missing entry inside a list
        [],
        None,
        NAN,
        np.array(["x", "y"], dtype=object),  # parquet gives NumPy arrays
        (1, 2),  # non-string ids become strings
    ]})
    out = to_arrays(frame, [InputSpec("history_item_ids", "string", 3)])["history_item_ids"]

    assert out.shape == (7, 3) and out.dtype == object
    assert out.tolist() == [["a", "b", "c"], ["a", "", "b"], ["", "", ""], ["", "", ""],
                            ["", "", ""], ["x", "y", ""], ["1", "2", ""]]


def test_float_lists_are_padded_with_zeros_and_missing_entries_count_as_zero():
    frame = pd.DataFrame({"history_gaps_s": [[1.0, 2.0, 3.0, 4.0], [5.0], None, NAN,
                                             np.array([6.0, NAN]), [None, 7.0]]})
    out = to_arrays(frame, [InputSpec("history_gaps_s", "float32", 3)])["history_gaps_s"]
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[1.0, 2.0, 3.0], [5.0, 0.0, 0.0], [0.0, 0.0, 0.0],
                                        [0.0, 0.0, 0.0], [6.0, 0.0, 0.0], [0.0, 7.0, 0.0]])


def test_int_lists_are_padded_with_zeros():
    frame = pd.DataFrame({"positions": [[3, 4, 5], [1], None, [None, 2]]})
    out = to_arrays(frame, [InputSpec("positions", "int64", 2)])["positions"]
    assert out.dtype == np.int64
    assert out.tolist() == [[3, 4], [1, 0], [0, 0], [0, 2]]


def test_to_arrays_follows_the_tower_specs():
    cfg = RetrievalModelConfig(history_length=4, max_tags=2,
                               user_numeric_features=("user_ctr_30d",),
                               user_categorical_features=("user_country",))
    items = pd.DataFrame({"item_id": ["a", "b"], "item_category": ["news", None],
                          "item_language": ["en", "de"], "item_tags": [["t1", "t2", "t3"], None],
                          "item_age_days": [1.5, NAN], "unused": [1, 2]})
    out = to_arrays(items, candidate_inputs(cfg))
    assert set(out) == {s.name for s in candidate_inputs(cfg)}
    assert out["item_tags"].tolist() == [["t1", "t2"], ["", ""]]
    assert out["item_category"].tolist() == ["news", ""]
    assert {s.name for s in query_inputs(cfg)} >= {"user_ctr_30d", "user_country"}


def test_empty_frame_gives_empty_arrays_of_the_right_shape():
    frame = pd.DataFrame({"user_id": pd.Series([], dtype=object),
                          "history_item_ids": pd.Series([], dtype=object)})
    out = to_arrays(frame, [InputSpec("user_id", "string"),
                            InputSpec("history_item_ids", "string", 3)])
    assert out["user_id"].shape == (0,)
    assert out["history_item_ids"].shape == (0, 3)


def test_missing_columns_are_a_schema_error_naming_them():
    frame = pd.DataFrame({"user_id": ["u1"], "device": ["web"]})
    specs = [InputSpec("user_id", "string"), InputSpec("history_item_ids", "string", 3),
             InputSpec("user_ctr_30d", "float32")]
    with pytest.raises(SchemaError, match=r"the request log lacks column\(s\) history_item_ids, "
                                          r"user_ctr_30d; it has user_id, device"):
        to_arrays(frame, specs, source="the request log")
    with pytest.raises(SchemaError, match="the training data lacks column"):
        to_arrays(frame, specs)


def test_take_selects_the_same_rows_of_every_array():
    arrays = {"a": np.arange(5), "b": np.arange(10).reshape(5, 2)}
    out = take(arrays, np.array([4, 0, 4]))
    assert out["a"].tolist() == [4, 0, 4]
    assert out["b"].tolist() == [[8, 9], [0, 1], [8, 9]]


# ---------------------------------------------------------------------------------------------
# with_item_age


def test_item_age_at_one_reference_time():
    items = pd.DataFrame({"item_id": ["a", "b", "c", "d"],
                          "item_created_at_s": [0, 86_400, NAN, None]})
    out = with_item_age(items, 3 * US_PER_DAY)

    assert out["item_age_days"].dtype == np.float32
    np.testing.assert_array_equal(out["item_age_days"].to_numpy(), [3.0, 2.0, NAN, NAN])
    assert out["item_id"].tolist() == ["a", "b", "c", "d"]
    assert "item_age_days" not in items  # the input is not modified


def test_item_age_per_row_reference_times():
    items = pd.DataFrame({"item_created_at_s": [0.0, 43_200.0, 86_400.0, NAN]})
    reference = np.array([US_PER_DAY, US_PER_DAY, 0, 5 * US_PER_DAY], dtype=np.int64)
    ages = with_item_age(items, reference)["item_age_days"].to_numpy()
    np.testing.assert_allclose(ages[:3], [1.0, 0.5, -1.0])
    assert np.isnan(ages[3])


def test_item_age_of_unparseable_creation_time_is_nan():
    items = pd.DataFrame({"item_created_at_s": ["86400", "yesterday"]})
    ages = with_item_age(items, 2 * US_PER_DAY)["item_age_days"].to_numpy()
    assert ages[0] == 1.0 and np.isnan(ages[1])


def test_us_per_day():
    assert US_PER_DAY == 24 * 3600 * 10**6


# ---------------------------------------------------------------------------------------------
# vocabulary and log_stats


def test_vocabulary_orders_by_frequency_then_value_and_drops_blank():
    values = np.array([["b", "a", ""], ["c", "a", "b"], ["", "d", "a"]], dtype=object)
    assert vocabulary(values) == ["a", "b", "c", "d"]
    assert vocabulary(np.array(["z", "y", "z", "", "", ""], dtype=object)) == ["z", "y"]
    assert vocabulary(np.array([], dtype=object)) == []
    assert vocabulary(np.array(["", ""], dtype=object)) == []


def test_log_stats_matches_the_numpy_oracle():
    values = np.array([0.0, 3.0, NAN, -2.0, 1e5, NAN], dtype=np.float32)
    present = np.array([0.0, 3.0, -2.0, 1e5])
    scaled = np.sign(present) * np.log1p(np.abs(present))
    mean, std = log_stats(values)
    assert isinstance(mean, float) and isinstance(std, float)
    assert mean == pytest.approx(scaled.mean(), rel=1e-6)
    assert std == pytest.approx(scaled.std(), rel=1e-6)


@pytest.mark.parametrize("values", [[NAN, NAN], []])
def test_log_stats_without_values_is_zero_one(values):
    assert log_stats(np.array(values, dtype=np.float32)) == (0.0, 1.0)


def test_log_stats_of_a_constant_has_std_one():
    mean, std = log_stats(np.array([4.0, 4.0, NAN, 4.0]))
    assert mean == pytest.approx(np.log1p(4.0)) and std == 1.0


# ---------------------------------------------------------------------------------------------
# Vocabularies

CFG = RetrievalModelConfig(history_length=3, max_tags=2, user_numeric_features=("user_ctr_30d",),
                           user_categorical_features=("user_country",))


def _examples() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Six training examples as query and candidate arrays."""
    s = lambda *v: np.array(v, dtype=object)  # noqa: E731
    queries = {
        "user_id": s("u2", "u1", "u2", "", "u3", "u1"),
        "history_item_ids": s(["b", "", ""], ["z", "b", ""], ["", "", ""], ["a", "", ""],
                              ["b", "c", ""], ["", "", ""]),
        "history_categories": s(["sport", "", ""], ["art", "sport", ""], ["", "", ""],
                                ["news", "", ""], ["sport", "news", ""], ["", "", ""]),
        "history_gaps_s": np.zeros((6, 3), np.float32),
        "hour_of_day": np.arange(6), "day_of_week": np.arange(6),
        "device": s("web", "mobile", "web", "", "tv", "web"),
        "country": s("US", "DE", "US", "US", "", "DE"),
        "language": s("en", "de", "en", "en", "en", "de"),
        "user_ctr_30d": np.array([0.1, NAN, 0.3, 0.3, NAN, 0.0], np.float32),
        "user_country": s("", "", "", "", "", ""),
    }
    candidates = {
        "item_id": s("b", "a", "b", "c", "", "b"),
        "item_category": s("news", "sport", "news", "", "music", "news"),
        "item_language": s("en", "de", "en", "", "en", "fr"),
        "item_tags": s(["t2", "t1"], ["t1", ""], ["t3", "t2"], ["", ""], ["t2", "t1"],
                       ["t1", ""]),
        "item_age_days": np.ones(6, np.float32),
    }
    return queries, candidates


def test_build_orders_every_vocabulary_and_excludes_blank():
    queries, candidates = _examples()
    vocab = Vocabularies.build(queries, candidates, query_inputs(CFG))

    assert vocab.user_ids == ["u1", "u2", "u3"]  # u1 and u2 tie: by value
    assert vocab.item_ids == ["b", "a", "c"]
    assert vocab.item_counts == [3, 1, 1]
    # categories of candidates (news 3, sport 1, music 1) and of histories (sport 3, news 2, art 1)
    assert vocab.categories == ["news", "sport", "art", "music"]
    assert vocab.tags == ["t1", "t2", "t3"]
    assert vocab.languages == ["en", "de", "fr"]
    assert vocab.strings == {"device": ["web", "mobile", "tv"], "country": ["US", "DE"],
                             "language": ["en", "de"], "user_country": []}
    assert set(vocab.numeric) == {"user_ctr_30d"}
    assert vocab.numeric["user_ctr_30d"] == log_stats(queries["user_ctr_30d"])
    for values in (vocab.user_ids, vocab.item_ids, vocab.categories, vocab.tags,
                   vocab.languages, *vocab.strings.values()):
        assert "" not in values and len(set(values)) == len(values)


def test_item_counts_are_aligned_with_item_ids():
    queries, candidates = _examples()
    candidates["item_id"] = np.array(["c", "a", "c", "b", "c", "a", ""], dtype=object)
    vocab = Vocabularies.build(queries, candidates, query_inputs(CFG))
    assert vocab.item_ids == ["c", "a", "b"]
    counted = dict(zip(*np.unique(candidates["item_id"], return_counts=True)))
    assert vocab.item_counts == [counted[i] for i in vocab.item_ids]
    assert len(vocab.item_counts) == len(vocab.item_ids)


def test_build_is_deterministic_under_row_order():
    queries, candidates = _examples()
    order = np.array([5, 3, 1, 0, 4, 2])
    shuffled = Vocabularies.build(take(queries, order), take(candidates, order),
                                  query_inputs(CFG))
    original = Vocabularies.build(queries, candidates, query_inputs(CFG))
    assert dataclasses.replace(shuffled, numeric={}) == dataclasses.replace(original, numeric={})
    assert shuffled.numeric["user_ctr_30d"] == pytest.approx(original.numeric["user_ctr_30d"])


def test_build_of_numeric_feature_without_values_is_zero_one():
    queries, candidates = _examples()
    queries["user_ctr_30d"] = np.full(6, NAN, np.float32)
    vocab = Vocabularies.build(queries, candidates, query_inputs(CFG))
    assert vocab.numeric == {"user_ctr_30d": (0.0, 1.0)}


def test_save_load_round_trip(tmp_path):
    queries, candidates = _examples()
    vocab = Vocabularies.build(queries, candidates, query_inputs(CFG))
    path = tmp_path / "vocabularies.json"
    vocab.save(path)

    loaded = Vocabularies.load(path)
    assert loaded == vocab
    assert isinstance(loaded.numeric["user_ctr_30d"], tuple)
    assert json.loads(path.read_text())["item_ids"] == ["b", "a", "c"]


def test_save_load_round_trip_of_empty_vocabularies(tmp_path):
    vocab = Vocabularies(user_ids=[], item_ids=[], item_counts=[], categories=[], tags=[],
                         languages=[], strings={}, numeric={})
    vocab.save(tmp_path / "v.json")
    assert Vocabularies.load(tmp_path / "v.json") == vocab


def test_load_of_a_missing_file_says_to_train_first(tmp_path):
    path = tmp_path / "model" / "vocabularies.json"
    with pytest.raises(SourceError, match=rf"{path} not found: .*`recsys train retrieval`"
                       ) as info:
        Vocabularies.load(path)
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_load_of_a_corrupt_file_is_a_source_error(tmp_path):
    path = tmp_path / "vocabularies.json"
    path.write_text('{"user_ids": ["u1"')  # a write cut short
    with pytest.raises(SourceError, match=str(path)):
        Vocabularies.load(path)


def test_records_encode_exactly_as_frames():
    """The serving encoder (records) and the training encoder (DataFrames) agree on every
    kind of value, missing ones included."""
    from recsys.model_contract.arrays import records_to_arrays
    from recsys.model_contract.feature_spec import InputSpec

    specs = [InputSpec("s", "string"), InputSpec("i", "int64"), InputSpec("f", "float32"),
             InputSpec("ls", "string", 3), InputSpec("lf", "float32", 3)]
    records = [
        {"s": "a", "i": 3, "f": 1.5, "ls": ["x", None, "y", "z"], "lf": [1.0, None, 2.0]},
        {"s": None, "i": None, "f": None, "ls": None, "lf": None},
        {"s": 7, "i": 2.0, "f": "2.5", "ls": [], "lf": [float("nan")]},
        {"s": float("nan"), "i": "x", "f": "bad"},
        {"i": True, "f": np.float32(0.25), "ls": ("p",)},
    ]
    frame = pd.DataFrame(records)
    for column in ("ls", "lf"):
        frame[column] = frame[column].astype(object)
    expected = to_arrays(frame, specs)
    got = records_to_arrays(records, specs)
    for spec in specs:
        if spec.dtype == "float32":
            np.testing.assert_array_equal(got[spec.name], expected[spec.name])
        else:
            assert got[spec.name].tolist() == expected[spec.name].tolist(), spec.name
        assert got[spec.name].dtype == expected[spec.name].dtype
    shared = records_to_arrays([{"f": 1.0}, {"f": 2.0}], specs[:1], shared={"s": "u"})
    assert shared["s"].tolist() == ["u", "u"]
