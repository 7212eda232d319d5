"""Tests of trainer.config: validation, dict round trips and YAML loading."""

from __future__ import annotations

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow is imported)

# isort: split
import dataclasses
import re
from pathlib import Path

import pytest

from recsys.errors import ConfigError
from recsys.model_contract.retrieval_config import (
    USER_CATEGORICAL_FEATURES,
    USER_NUMERIC_FEATURES,
    RetrievalModelConfig,
)
from trainer.config import STRATEGIES, RetrievalConfig, TrainConfig, load_config

NAN = float("nan")


def _names(field: str, value) -> str:
    """A pattern for a message naming ``field`` and then ``value`` (as its repr)."""
    return rf"{re.escape(field)}\b.*{re.escape(repr(value))}"


# ---------------------------------------------------------------------------------------------
# Validation


def test_defaults_are_valid():
    config = RetrievalConfig()
    assert config.model == RetrievalModelConfig()
    assert config.train == TrainConfig()
    assert config.train.strategy in STRATEGIES


@pytest.mark.parametrize(("field", "value"), [
    ("embedding_dim", 0),
    ("embedding_dim", -8),
    ("id_embedding_dim", 0),
    ("feature_embedding_dim", 2.5),
    ("history_length", 0),
    ("max_tags", -1),
    ("hidden_units", (0,)),
    ("hidden_units", (16, -4)),
    ("hidden_units", (16.0,)),
    ("recency_decay", 0),
    ("recency_decay", 1.5),
    ("recency_decay", NAN),
    ("temperature", 0),
    ("temperature", -0.1),
    ("temperature", NAN),
    ("id_dropout", 1.0),
    ("id_dropout", -0.01),
    ("logq_correction", -0.5),
    ("logq_correction", NAN),
    ("logq_correction", float("inf")),
    ("logq_correction", "strong"),
    ("num_random_negatives", -1),
    ("num_hard_negatives", 0),
    ("num_index_negatives", -1),
    ("index_negative_depth", 0),
    ("user_id_embedding", "no"),
    ("mask_user_positives", "yes"),
    ("mask_user_positives", 1),
    ("ensemble_members", 0),
    ("ensemble_members", 2.5),
    ("member_temperatures", (0.05, 0.0)),
    ("member_temperatures", (-0.1,)),
    ("member_temperatures", (NAN,)),
    ("member_temperatures", 0.1),
    ("member_temperatures", ("warm",)),
    ("sequence_blocks", -1),
    ("sequence_dim", 0),
    ("sequence_heads", 0),
    ("sequence_dropout", 1.0),
])
def test_bad_model_value_is_a_config_error_naming_field_and_value(field, value):
    with pytest.raises(ConfigError, match=_names(field, value)):
        RetrievalModelConfig(**{field: value})


@pytest.mark.parametrize("field", ["user_numeric_features", "user_categorical_features"])
def test_unknown_user_feature_is_refused_by_name(field):
    known = {"user_numeric_features": USER_NUMERIC_FEATURES,
             "user_categorical_features": USER_CATEGORICAL_FEATURES}[field]
    with pytest.raises(ConfigError, match=_names("user feature", "user_shoe_size")) as info:
        RetrievalModelConfig(**{field: (known[0], "user_shoe_size")})
    assert known[0] in str(info.value)  # the message lists what is allowed


@pytest.mark.parametrize(("members", "temperatures"), [(1, (0.05, 0.15)), (3, (0.05, 0.15)),
                                                      (2, (0.1,))])
def test_member_temperatures_must_give_one_per_ensemble_member(members, temperatures):
    with pytest.raises(ConfigError, match=rf"member_temperatures: {len(temperatures)} "
                                          rf"temperatures .* for {members} ensemble member"):
        RetrievalModelConfig(ensemble_members=members, member_temperatures=temperatures)


def test_each_member_trains_at_its_own_temperature_or_at_the_shared_one():
    assert RetrievalModelConfig(temperature=0.07, ensemble_members=3).temperatures == (0.07,) * 3
    config = RetrievalModelConfig.from_dict({"ensemble_members": 2,
                                             "member_temperatures": [0.05, 0.15]})
    assert config.member_temperatures == (0.05, 0.15) == config.temperatures


def test_fewer_user_features_and_no_hidden_layers_are_valid():
    config = RetrievalModelConfig(user_numeric_features=(), user_categorical_features=(),
                                  hidden_units=(), id_dropout=0.0, recency_decay=1.0,
                                  num_hard_negatives=3)
    assert config.hidden_units == () and config.num_hard_negatives == 3


@pytest.mark.parametrize(("field", "value"), [
    ("epochs", 0),
    ("batch_size", -1),
    ("batch_size", 32.0),
    ("checkpoint_every_epochs", 0),
    ("max_checkpoints", 0),
    ("learning_rate", -1),
    ("learning_rate", 0.0),
    ("learning_rate", NAN),
    ("seed", -1),
    ("seed", 1.5),
    ("strategy", "tpu"),
    ("strategy", "Mirrored"),
])
def test_bad_train_value_is_a_config_error_naming_field_and_value(field, value):
    with pytest.raises(ConfigError, match=_names(field, value)):
        TrainConfig(**{field: value})


def test_strategy_error_lists_the_allowed_strategies():
    with pytest.raises(ConfigError) as info:
        TrainConfig(strategy="tpu")
    for strategy in STRATEGIES:
        assert strategy in str(info.value)


def test_config_error_is_a_value_error():
    with pytest.raises(ValueError):
        TrainConfig(epochs=0)


@pytest.mark.parametrize(("kind", "field", "value"), [
    (TrainConfig, "learning_rate", "fast"),
    (RetrievalModelConfig, "temperature", "0.05"),
    (RetrievalModelConfig, "hidden_units", 256),
    (RetrievalModelConfig, "embedding_dim", True),
])
def test_value_of_the_wrong_type_is_a_config_error_naming_field_and_value(kind, field, value):
    # Values of the wrong type come straight from YAML (`hidden_units: 256`, `embedding_dim:
    # yes`, and `learning_rate: 3e-3`, which PyYAML reads as a string).
    with pytest.raises(ConfigError, match=_names(field, value)):
        kind(**{field: value})


# ---------------------------------------------------------------------------------------------
# Dict round trips


def test_to_dict_from_dict_round_trip_of_the_defaults():
    config = RetrievalConfig()
    raw = config.to_dict()
    assert set(raw) == {"model", "train"}
    assert raw["model"]["embedding_dim"] == config.model.embedding_dim
    assert RetrievalConfig.from_dict(raw) == config


def test_from_dict_turns_lists_into_tuples_and_round_trips():
    raw = {
        "model": {"embedding_dim": 8, "hidden_units": [32, 16],
                  "user_numeric_features": ["user_ctr_30d"],
                  "user_categorical_features": [], "num_hard_negatives": 4},
        "train": {"epochs": 2, "strategy": "mirrored", "learning_rate": 0.01},
    }
    config = RetrievalConfig.from_dict(raw)

    assert config.model.hidden_units == (32, 16)
    assert config.model.user_numeric_features == ("user_ctr_30d",)
    assert config.model.user_categorical_features == ()
    assert config.model.num_hard_negatives == 4
    assert config.train == TrainConfig(epochs=2, strategy="mirrored", learning_rate=0.01)
    assert config.model.history_length == RetrievalModelConfig().history_length
    hash(config)  # tuples, not lists: the frozen config is hashable
    assert RetrievalConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["model"]["hidden_units"] == (32, 16)


def test_from_dict_with_missing_sections_gives_the_defaults():
    assert RetrievalConfig.from_dict({}) == RetrievalConfig()
    assert RetrievalConfig.from_dict({"train": {"epochs": 1}}).model == RetrievalModelConfig()


def test_from_dict_refuses_unknown_sections_by_name():
    with pytest.raises(ConfigError, match=r"unknown retrieval config section\(s\): serving, zoo"):
        RetrievalConfig.from_dict({"model": {}, "serving": {}, "zoo": 1})


def test_from_dict_refuses_unknown_keys_by_name_and_section():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) in config section 'model': "
                                          r"embedding_size; known: embedding_dim"):
        RetrievalConfig.from_dict({"model": {"embedding_size": 8}})
    with pytest.raises(ConfigError, match=r"section 'train': epoch\b"):
        RetrievalConfig.from_dict({"train": {"epoch": 3}})


def test_from_dict_refuses_non_mappings():
    with pytest.raises(ConfigError, match="retrieval config must be a mapping, got list"):
        RetrievalConfig.from_dict([("model", {})])
    with pytest.raises(ConfigError, match="config section 'train' must be a mapping, got 5"):
        RetrievalConfig.from_dict({"train": 5})


def test_from_dict_reports_validation_errors():
    with pytest.raises(ConfigError, match=_names("strategy", "tpu")):
        RetrievalConfig.from_dict({"train": {"strategy": "tpu"}})
    with pytest.raises(ConfigError, match=_names("hidden_units", (0,))):
        RetrievalConfig.from_dict({"model": {"hidden_units": [0]}})


# ---------------------------------------------------------------------------------------------
# load_config


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "retrieval.yaml"
    path.write_text(text)
    return path


def test_load_config_without_a_file_gives_the_defaults():
    assert load_config() == RetrievalConfig()


def test_load_config_reads_a_valid_file(tmp_path):
    path = _write(tmp_path, "model:\n  embedding_dim: 32\n  hidden_units: [64, 32]\n"
                            "train:\n  epochs: 2\n  strategy: mirrored\n")
    config = load_config(path)
    assert config.model == RetrievalModelConfig(embedding_dim=32, hidden_units=(64, 32))
    assert config.train == TrainConfig(epochs=2, strategy="mirrored")


def test_load_config_accepts_a_string_path_and_an_empty_file(tmp_path):
    assert load_config(str(_write(tmp_path, ""))) == RetrievalConfig()


def test_a_workflows_defaults_give_way_to_the_file_then_to_the_overrides(tmp_path):
    defaults = {"model": {"history_length": 10}, "train": {"epochs": 3, "batch_size": 512}}
    assert load_config(defaults=defaults) == RetrievalConfig(
        model=RetrievalModelConfig(history_length=10), train=TrainConfig(epochs=3,
                                                                         batch_size=512))
    path = _write(tmp_path, "model:\n  user_id_embedding: false\ntrain:\n  epochs: 2\n")
    config = load_config(path, {"train": {"batch_size": 128}}, defaults=defaults)
    assert config.model == RetrievalModelConfig(history_length=10, user_id_embedding=False)
    assert config.train == TrainConfig(epochs=2, batch_size=128)
    assert defaults == {"model": {"history_length": 10},  # not changed
                        "train": {"epochs": 3, "batch_size": 512}}


def test_overrides_win_over_the_file_and_none_is_ignored(tmp_path):
    path = _write(tmp_path, "train:\n  epochs: 2\n  batch_size: 256\n")
    config = load_config(path, {"train": {"epochs": 5, "batch_size": None, "seed": None},
                                "model": {"embedding_dim": 16, "temperature": None}})
    assert config.train == TrainConfig(epochs=5, batch_size=256)
    assert config.model == RetrievalModelConfig(embedding_dim=16)


def test_overrides_without_a_file(tmp_path):
    config = load_config(None, {"train": {"learning_rate": 0.1}})
    assert config == RetrievalConfig(train=TrainConfig(learning_rate=0.1))


def test_bad_override_value_is_a_config_error():
    with pytest.raises(ConfigError, match=_names("epochs", 0)):
        load_config(None, {"train": {"epochs": 0}})


def test_override_of_an_unknown_section_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="serving"):
        load_config(None, {"serving": {"port": 8500}})


def test_missing_file_is_a_config_error_naming_it(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=rf"config file {re.escape(str(path))} not found") as info:
        load_config(path)
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_invalid_yaml_is_a_config_error(tmp_path):
    path = _write(tmp_path, "model: [unclosed\n")
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))} is not valid YAML"):
        load_config(path)


@pytest.mark.parametrize(("text", "kind"), [("- model\n- train\n", "list"), ("42\n", "int")])
def test_non_mapping_top_level_is_a_config_error(tmp_path, text, kind):
    with pytest.raises(ConfigError, match=rf"must hold a mapping .*got {kind}"):
        load_config(_write(tmp_path, text))


def test_unknown_section_in_the_file_is_refused_by_name(tmp_path):
    path = _write(tmp_path, "model: {}\nserving:\n  port: 8500\n")
    with pytest.raises(ConfigError, match=r"unknown section\(s\) serving; expected model, train"):
        load_config(path)


def test_non_mapping_section_in_the_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="section 'model' must be a mapping"):
        load_config(_write(tmp_path, "model: 5\n"))


def test_unknown_key_in_the_file_is_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match="batchsize"):
        load_config(_write(tmp_path, "train:\n  batchsize: 64\n"))


def test_bad_value_in_the_file_names_field_and_value(tmp_path):
    with pytest.raises(ConfigError, match=_names("id_dropout", 1.0)):
        load_config(_write(tmp_path, "model:\n  id_dropout: 1.0\n"))


def test_value_of_the_wrong_type_in_the_file_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match=_names("learning_rate", "fast")):
        load_config(_write(tmp_path, "train:\n  learning_rate: fast\n"))


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().epochs = 3
