"""Tests of the query and candidate towers with real TensorFlow and a hand-made vocabulary."""

from __future__ import annotations

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow is imported)

# isort: split
import numpy as np
import pytest
import tensorflow as tf

from recsys.model_contract.feature_spec import candidate_inputs, query_inputs
from recsys.model_contract.retrieval_config import (
    CONTEXT_CATEGORICAL_FEATURES,
    RetrievalModelConfig,
)
from trainer.candidate_tower import CandidateTower
from trainer.query_tower import QueryTower
from trainer.vocabularies import Vocabularies

CFG = RetrievalModelConfig(embedding_dim=8, id_embedding_dim=8, feature_embedding_dim=4,
                           hidden_units=(16,), history_length=5, max_tags=3)
VOCAB = Vocabularies(
    user_ids=["u1", "u2", "u3"],
    item_ids=["a", "b", "c", "d", "e", "f"],
    item_counts=[6, 5, 4, 3, 2, 1],
    categories=["news", "sport", "music"],
    tags=["t1", "t2", "t3", "t4"],
    languages=["en", "de"],
    strings={"device": ["mobile", "web"], "country": ["US", "DE"], "language": ["en", "de"],
             "user_country": ["US"], "user_device": ["mobile"]},  # others: empty vocabularies
    numeric={"user_engagements_7d": (1.0, 0.5), "user_ctr_30d": (0.1, 0.05)},
)


def _features(specs, rows: list[dict]) -> dict[str, tf.Tensor]:
    """Tensors for ``specs`` from ``rows``; inputs a row leaves out get a neutral value."""
    neutral = {"string": "", "float32": np.nan, "int64": 0}
    features = {}
    for spec in specs:
        values = [row.get(spec.name, [] if spec.width else neutral[spec.dtype]) for row in rows]
        if spec.width is None:
            features[spec.name] = tf.constant(values, getattr(tf, spec.dtype))
        else:  # lists of any (equal) length, as a client may send them
            features[spec.name] = tf.constant(values, getattr(tf, spec.dtype),
                                              shape=[len(rows), len(values[0])])
    return features


def queries(*rows: dict) -> dict[str, tf.Tensor]:
    return _features(query_inputs(CFG), list(rows))


def candidates(*rows: dict) -> dict[str, tf.Tensor]:
    return _features(candidate_inputs(CFG), list(rows))


USER = {"user_id": "u1", "history_item_ids": ["a", "b", "c"],
        "history_categories": ["news", "sport", "news"], "history_gaps_s": [60.0, 3600.0, 9e4],
        "hour_of_day": 13, "day_of_week": 2, "device": "mobile", "country": "US",
        "language": "en", "user_engagements_7d": 4.0, "user_ctr_30d": 0.2,
        "user_country": "US", "user_device": "web"}
ITEM = {"item_id": "a", "item_category": "news", "item_language": "en",
        "item_tags": ["t1", "t2", ""], "item_age_days": 3.5}


def user(**overrides) -> dict:
    return {**USER, **overrides}


def item(**overrides) -> dict:
    return {**ITEM, **overrides}


@pytest.fixture(scope="module")
def query_tower() -> QueryTower:
    tf.keras.utils.set_random_seed(11)
    return QueryTower(CFG, VOCAB)


@pytest.fixture(scope="module")
def candidate_tower() -> CandidateTower:
    tf.keras.utils.set_random_seed(12)
    return CandidateTower(CFG, VOCAB)


def _assert_unit_embeddings(out: tf.Tensor, batch: int) -> np.ndarray:
    assert out.shape == (batch, CFG.embedding_dim) and out.dtype == tf.float32
    values = out.numpy()
    assert np.isfinite(values).all()
    np.testing.assert_allclose(np.linalg.norm(values, axis=1), 1.0, rtol=1e-5)
    return values


# ---------------------------------------------------------------------------------------------
# Query tower


def test_query_tower_gives_unit_embeddings(query_tower):
    batch = queries(
        USER,
        user(user_id="u2", history_item_ids=["d", "", ""], history_categories=["music", "", ""],
             history_gaps_s=[5.0, 0.0, 0.0], hour_of_day=23, day_of_week=6),
        user(user_id="", history_item_ids=["", "", ""], history_categories=["", "", ""],
             history_gaps_s=[0.0, 0.0, 0.0], device="", user_engagements_7d=np.nan,
             user_ctr_30d=np.nan),  # everything missing
        user(hour_of_day=99, day_of_week=-3, history_gaps_s=[-5.0, np.nan, 1.0]),  # out of range
    )
    values = _assert_unit_embeddings(query_tower(batch), 4)
    assert len({tuple(np.round(row, 6)) for row in values}) == 4


def test_query_tower_is_deterministic_at_inference(query_tower):
    batch = queries(USER, user(user_id="u3"))
    np.testing.assert_array_equal(query_tower(batch).numpy(),
                                  query_tower(batch, training=False).numpy())


def test_unseen_user_gets_a_valid_embedding_of_its_own(query_tower):
    out = query_tower(queries(USER, user(user_id="stranger"), user(user_id="another-one")))
    known, unseen, other_unseen = _assert_unit_embeddings(out, 3)
    assert not np.allclose(unseen, known, atol=1e-4)
    np.testing.assert_allclose(unseen, other_unseen, atol=1e-6)  # one shared "unknown" row


def test_without_id_rows_every_user_is_encoded_by_history_context_and_features():
    """``user_id_embedding: false``: a known user and a stranger with the same history,
    context and features get the same query; the history still moves it; the config
    survives a round trip."""
    import dataclasses

    tf.keras.utils.set_random_seed(11)
    cfg = dataclasses.replace(CFG, user_id_embedding=False)
    tower = QueryTower(cfg, VOCAB)
    out = tower(queries(USER, user(user_id="u2"), user(user_id="stranger"),
                        user(history_item_ids=["d", "e", "f"],
                             history_categories=["music", "music", "sport"])))
    known, other_known, stranger, other_history = _assert_unit_embeddings(out, 4)
    np.testing.assert_allclose(known, other_known, atol=1e-6)
    np.testing.assert_allclose(known, stranger, atol=1e-6)
    assert not np.allclose(known, other_history, atol=1e-4)
    assert tower.user.vocabulary == []  # no row per user id
    assert QueryTower.from_config(tower.get_config()).cfg == cfg
    with_rows = QueryTower(CFG, VOCAB)(queries(USER, user(user_id="u2"))).numpy()
    assert not np.allclose(with_rows[0], with_rows[1], atol=1e-6)  # the default: rows


def test_unseen_history_items_and_categories_are_accepted(query_tower):
    out = query_tower(queries(USER, user(history_item_ids=["zz", "a", "yy"],
                                         history_categories=["cooking", "news", "?"])))
    known, unseen = _assert_unit_embeddings(out, 2)
    assert not np.allclose(known, unseen, atol=1e-4)


def test_histories_longer_than_history_length_are_truncated(query_tower):
    length = CFG.history_length
    head = ["a", "b", "c", "d", "e"][:length]
    long_a = user(history_item_ids=head + ["f", "a", "b"],
                  history_categories=["news"] * length + ["sport", "music", "sport"],
                  history_gaps_s=[10.0] * length + [1.0, 2.0, 3.0])
    long_b = user(history_item_ids=head + ["c", "zz", ""],
                  history_categories=["news"] * length + ["", "news", "x"],
                  history_gaps_s=[10.0] * length + [7.0, np.nan, 0.0])
    exact = user(history_item_ids=head, history_categories=["news"] * length,
                 history_gaps_s=[10.0] * length)

    longer = _assert_unit_embeddings(query_tower(queries(long_a, long_b)), 2)
    np.testing.assert_allclose(longer[0], longer[1], atol=1e-6)
    np.testing.assert_allclose(longer[0], query_tower(queries(exact)).numpy()[0], atol=1e-6)


def test_history_of_width_zero_is_accepted_and_equals_an_all_padding_history(query_tower):
    empty = user(history_item_ids=[], history_categories=[], history_gaps_s=[])
    padded = user(history_item_ids=[""] * 5, history_categories=[""] * 5,
                  history_gaps_s=[0.0] * 5)
    from_empty = _assert_unit_embeddings(query_tower(queries(empty, empty)), 2)
    np.testing.assert_allclose(from_empty[0], query_tower(queries(padded)).numpy()[0], atol=1e-6)
    # and the history matters: a user with items embeds differently
    assert not np.allclose(from_empty[0], query_tower(queries(USER)).numpy()[0], atol=1e-4)


def test_padding_does_not_change_the_query_embedding(query_tower):
    short = user(history_item_ids=["a", "b"], history_categories=["news", "sport"],
                 history_gaps_s=[30.0, 400.0])
    padded = user(history_item_ids=["a", "b", "", ""],
                  history_categories=["news", "sport", "", ""],
                  history_gaps_s=[30.0, 400.0, 0.0, 0.0])
    a = query_tower(queries(short)).numpy()
    b = query_tower(queries(padded)).numpy()
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_missing_gap_counts_as_zero(query_tower):
    out = query_tower(queries(user(history_gaps_s=[np.nan, np.nan, 5.0]),
                              user(history_gaps_s=[0.0, 0.0, 5.0])))
    values = _assert_unit_embeddings(out, 2)
    np.testing.assert_allclose(values[0], values[1], atol=1e-6)


def test_query_embedding_does_not_depend_on_batch_neighbours(query_tower):
    alone = query_tower(queries(USER)).numpy()[0]
    together = query_tower(queries(user(user_id="u2", hour_of_day=3), USER)).numpy()[1]
    np.testing.assert_allclose(alone, together, atol=1e-6)


def test_query_tower_reads_every_context_and_user_feature(query_tower):
    base = query_tower(queries(USER)).numpy()[0]
    changes = {"hour_of_day": 2, "day_of_week": 5, "user_engagements_7d": 400.0,
               "user_ctr_30d": np.nan, "user_country": "", "device": "web"}
    for name, value in changes.items():
        changed = query_tower(queries(user(**{name: value}))).numpy()[0]
        assert not np.allclose(base, changed, atol=1e-6), name
    assert set(CONTEXT_CATEGORICAL_FEATURES) <= set(USER)


def test_query_tower_config_round_trip_with_copied_weights(query_tower):
    batch = queries(USER, user(user_id="stranger", history_item_ids=["zz", "a", ""],
                               history_categories=["?", "news", ""],
                               history_gaps_s=[1.0, 2.0, 0.0]))
    expected = query_tower(batch).numpy()

    config = query_tower.get_config()
    clone = QueryTower.from_config(config)
    assert clone.cfg == CFG and clone.vocab == VOCAB
    assert clone.get_config() == config
    clone(batch)  # build
    clone.set_weights(query_tower.get_weights())
    np.testing.assert_allclose(clone(batch).numpy(), expected, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Candidate tower


def test_candidate_tower_gives_unit_embeddings(candidate_tower):
    batch = candidates(
        ITEM,
        item(item_id="b", item_category="sport", item_language="de",
             item_tags=["t3", "", ""], item_age_days=0.0),
        item(item_id="", item_category="", item_language="", item_tags=["", "", ""],
             item_age_days=np.nan),  # everything missing
        item(item_age_days=-4.0),  # created "after" the request: clamped
    )
    values = _assert_unit_embeddings(candidate_tower(batch), 4)
    assert len({tuple(np.round(row, 6)) for row in values}) == 4


def test_candidate_tower_is_deterministic_at_inference(candidate_tower):
    batch = candidates(ITEM, item(item_id="c"))
    np.testing.assert_array_equal(candidate_tower(batch).numpy(),
                                  candidate_tower(batch, training=False).numpy())


def test_unseen_item_gets_a_valid_embedding_of_its_own(candidate_tower):
    out = candidate_tower(candidates(ITEM, item(item_id="brand-new"), item(item_id="newer")))
    known, unseen, other_unseen = _assert_unit_embeddings(out, 3)
    assert not np.allclose(unseen, known, atol=1e-4)
    np.testing.assert_allclose(unseen, other_unseen, atol=1e-6)


def test_unseen_item_embedding_still_depends_on_its_content(candidate_tower):
    out = candidate_tower(candidates(item(item_id="new", item_category="news"),
                                     item(item_id="new", item_category="music"))).numpy()
    assert not np.allclose(out[0], out[1], atol=1e-4)


def test_unseen_user_and_unseen_item_differ_from_the_known_ones(query_tower, candidate_tower):
    users = query_tower(queries(USER, user(user_id="stranger"))).numpy()
    items = candidate_tower(candidates(ITEM, item(item_id="brand-new"))).numpy()
    assert not np.allclose(users[0], users[1], atol=1e-4)
    assert not np.allclose(items[0], items[1], atol=1e-4)


def test_tags_beyond_max_tags_are_ignored_and_width_zero_is_accepted(candidate_tower):
    more = candidate_tower(candidates(item(item_tags=["t1", "t2", "t3", "t4", "t1"]),
                                      item(item_tags=["t1", "t2", "t3", "", "zz"]))).numpy()
    exact = candidate_tower(candidates(item(item_tags=["t1", "t2", "t3"]))).numpy()
    np.testing.assert_allclose(more[0], more[1], atol=1e-6)
    np.testing.assert_allclose(more[0], exact[0], atol=1e-6)

    none = _assert_unit_embeddings(candidate_tower(candidates(item(item_tags=[]))), 1)
    padded = candidate_tower(candidates(item(item_tags=["", "", ""]))).numpy()
    np.testing.assert_allclose(none, padded, atol=1e-6)


def test_tag_padding_does_not_change_the_item_embedding(candidate_tower):
    short = candidate_tower(candidates(item(item_tags=["t2"]))).numpy()
    padded = candidate_tower(candidates(item(item_tags=["t2", "", ""]))).numpy()
    np.testing.assert_allclose(short, padded, atol=1e-6)


def test_candidate_tower_config_round_trip_with_copied_weights(candidate_tower):
    batch = candidates(ITEM, item(item_id="brand-new", item_age_days=np.nan))
    expected = candidate_tower(batch).numpy()

    config = candidate_tower.get_config()
    clone = CandidateTower.from_config(config)
    assert clone.cfg == CFG and clone.vocab == VOCAB
    clone(batch)  # build
    clone.set_weights(candidate_tower.get_weights())
    np.testing.assert_allclose(clone(batch).numpy(), expected, atol=1e-6)
