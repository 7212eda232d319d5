"""Experiment definition files: what a good file gives, and every malformed or conflicting
file refused with the field named."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from recsys.errors import ConfigError
from recsys.experiments import ArmChanges, load_experiments, parse_experiments

DATA = Path(__file__).parent / "data"


def arms(*names: str) -> list[dict]:
    return [{"name": n} for n in names]


def test_the_golden_file_loads_with_its_defaults():
    definitions = load_experiments(DATA / "experiments_golden.yaml")
    assert definitions.hash_version == "v1" and definitions.holdout.share == 0.1
    ranker, fusion, popular = definitions.experiments
    assert (ranker.salt, ranker.baseline, ranker.traffic_offset) == ("ranker-v2", "control", 0.0)
    assert fusion.salt == "fusion-weight-2026-12" and fusion.traffic_offset == 0.5
    assert fusion.arms[1].changes == ArmChanges(retrieval_weight=0.2)
    assert popular.targeting.countries == ("US", "DE") and popular.targeting.users == "returning"
    assert popular.arms[1].changes.changed() == ("pipeline",)


def test_offsets_default_to_the_end_of_the_previous_slice_of_the_layer():
    got = parse_experiments({"experiments": [
        {"name": "a", "layer": "l", "traffic": 0.25, "arms": arms("x", "y")},
        {"name": "b", "layer": "other", "traffic": 0.5, "arms": arms("x", "y")},
        {"name": "c", "layer": "l", "traffic": 0.5, "arms": arms("x", "y")}]})
    assert [e.traffic_offset for e in got.experiments] == [0.0, 0.0, 0.25]


def test_times_from_yaml_or_text_need_a_time_zone(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("experiments:\n  - name: a\n    start: 2026-12-01T00:00:00Z\n"
                    "    arms: [{name: x}, {name: y}]\n")
    assert load_experiments(path).experiments[0].start == dt.datetime(
        2026, 12, 1, tzinfo=dt.timezone.utc)


def test_an_empty_file_has_no_experiments(tmp_path):
    (tmp_path / "e.yaml").write_text("")
    assert load_experiments(tmp_path / "e.yaml").experiments == ()


@pytest.mark.parametrize("raw, message", [
    ({"colour": 1}, "unknown key(s) in the file: colour; known: hash_version, holdout, "
                    "experiments"),
    ({"hash_version": "v9"}, "hash_version must be one of ['v1'], got 'v9'"),
    ({"holdout": {"share": 1.0}}, "holdout.share must be a number in [0, 1), got 1.0"),
    ({"holdout": {"salt": "a\nb"}}, "holdout.salt must be a non-empty string without a "
                                    "newline, got 'a\\nb'"),
    ({"experiments": {"name": "a"}}, "experiments must be a list, got {'name': 'a'}"),
    ({"experiments": ["a"]}, "experiments[0] must be a mapping, got 'a'"),
    ({"experiments": [{"arms": arms("x", "y")}]}, "experiments[0].name is required"),
    ({"experiments": [{"name": "Bad Name", "arms": arms("x", "y")}]},
     "experiments[0] (Bad Name).name must be a name of lower-case letters"),
    ({"experiments": [{"name": "a", "arms": arms("x")}]},
     "experiments[0] (a).arms must be a list of at least 2 arms, got [{'name': 'x'}]"),
    ({"experiments": [{"name": "a", "arms": arms("x", "x")}]},
     "experiments[0] (a).arms: arm name(s) x used twice"),
    ({"experiments": [{"name": "a", "arms": [{"name": "x", "weight": -1}, {"name": "y"}]}]},
     "experiments[0] (a).arms[0] (x).weight must be a finite number > 0, got -1"),
    ({"experiments": [{"name": "a", "traffic": 0, "arms": arms("x", "y")}]},
     "experiments[0] (a).traffic must be a number in (0, 1], got 0"),
    ({"experiments": [{"name": "a", "traffic": "half", "arms": arms("x", "y")}]},
     "experiments[0] (a).traffic must be a number in (0, 1], got 'half'"),
    ({"experiments": [{"name": "a", "baseline": "z", "arms": arms("x", "y")}]},
     "experiments[0] (a).baseline must be one of ['x', 'y'], got 'z'"),
    ({"experiments": [{"name": "a", "arms": arms("x", "y"), "owner": "me"}]},
     "unknown key(s) in experiments[0] (a): owner"),
    ({"experiments": [{"name": "a", "arms": [{"name": "x", "changes": {"ranker": "v2"}},
                                             {"name": "y"}]}]},
     "unknown key(s) in experiments[0] (a).arms[0] (x).changes: ranker; known: model_label"),
    ({"experiments": [{"name": "a", "arms": [{"name": "x", "changes": {"pipeline": "fast"}},
                                             {"name": "y"}]}]},
     "experiments[0] (a).arms[0] (x).changes.pipeline must be one of ['full', 'retrieval', "
     "'popular'], got 'fast'"),
    ({"experiments": [{"name": "a", "arms": [{"name": "x", "changes": {
        "retrieval_candidates": 0}}, {"name": "y"}]}]},
     "experiments[0] (a).arms[0] (x).changes.retrieval_candidates must be a positive integer, "
     "got 0"),
    ({"experiments": [{"name": "a", "arms": [{"name": "x", "changes": {
        "exploration": "greedy"}}, {"name": "y"}]}]},
     "experiments[0] (a).arms[0] (x).changes.exploration.policy must be one of ['none', "),
    ({"experiments": [{"name": "a", "arms": [{"name": "x", "changes": {
        "exploration": {"policy": "softmax", "temperature": -1}}}, {"name": "y"}]}]},
     "experiments[0] (a).arms[0] (x).changes.exploration.temperature must be a finite number "
     "> 0, got -1"),
    ({"experiments": [{"name": "a", "arms": [{"name": "x", "changes": {
        "exploration": "softmax:epsilon=0.1"}}, {"name": "y"}]}]},
     "experiments[0] (a).arms[0] (x).changes.exploration.epsilon: policy 'softmax' does not "
     "take it"),
    ({"experiments": [{"name": "a", "arms": arms("x", "y"), "targeting": {"users": "old"}}]},
     "experiments[0] (a).targeting.users must be one of ['all', 'new', 'returning'], got 'old'"),
    ({"experiments": [{"name": "a", "arms": arms("x", "y"), "targeting": {"countries": "US"}}]},
     "experiments[0] (a).targeting.countries must be a list of non-empty strings, got 'US'"),
    ({"experiments": [{"name": "a", "arms": arms("x", "y"), "start": "yesterday"}]},
     "experiments[0] (a).start must be an ISO 8601 time, got 'yesterday'"),
    ({"experiments": [{"name": "a", "arms": arms("x", "y"), "start": "2026-12-01T00:00:00"}]},
     "experiments[0] (a).start must name its time zone"),
    ({"experiments": [{"name": "a", "arms": arms("x", "y"), "start": "2026-12-02T00:00:00Z",
                       "stop": "2026-12-01T00:00:00Z"}]},
     "experiments[0] (a).stop (2026-12-01T00:00:00+00:00) must be after experiments[0] "
     "(a).start (2026-12-02T00:00:00+00:00)"),
    ({"experiments": [{"name": "a", "arms": arms("x", "y"), "method": "bandit"}]},
     "experiments[0] (a).method must be one of ['ab', 'interleaving'], got 'bandit'"),
    ({"experiments": [{"name": "a", "arms": arms("x", "y", "z"), "method": "interleaving"}]},
     "experiments[0] (a).arms: an interleaving experiment compares exactly 2 arms, got 3"),
])
def test_malformed_definitions_are_refused_naming_the_field(raw, message):
    with pytest.raises(ConfigError) as caught:
        parse_experiments(raw)
    assert str(caught.value).startswith(message), str(caught.value)


@pytest.mark.parametrize("experiments, message", [
    ([{"name": "a", "arms": arms("x", "y")}, {"name": "a", "layer": "l", "arms": arms("x", "y")}],
     "experiments[1] (a): the name is already used by experiments[0]"),
    ([{"name": "a", "traffic": 0.6, "arms": arms("x", "y")},
      {"name": "b", "traffic": 0.5, "traffic_offset": 0.5, "arms": arms("x", "y")}],
     "experiments a and b overlap in layer 'default': [0, 0.6) and [0.5, 1)"),
    ([{"name": "a", "traffic": 0.6, "arms": arms("x", "y")},
      {"name": "b", "traffic": 0.6, "arms": arms("x", "y")}],
     "experiment b passes the end of layer 'default': its slice [0.6, 1.2) ends after 1"),
    ([{"name": "a", "layer": "one", "arms": [{"name": "x"}, {"name": "y", "changes": {
        "rules": {"recency_boost": 0}}}]},
      {"name": "b", "layer": "two", "arms": [{"name": "x"}, {"name": "y", "changes": {
          "rules": {"recency_boost": 0.3}}}]}],
     "experiments a (layer 'one') and b (layer 'two') both change rules.recency_boost"),
    ([{"name": "a", "layer": "one", "method": "interleaving", "arms": arms("x", "y")},
      {"name": "b", "layer": "two", "method": "interleaving", "arms": arms("x", "y")}],
     "interleaving experiments are in layers ['one', 'two']: put them in one layer"),
])
def test_conflicting_definitions_are_refused_naming_both(experiments, message):
    with pytest.raises(ConfigError) as caught:
        parse_experiments({"experiments": experiments})
    assert str(caught.value).startswith(message), str(caught.value)


def test_a_bad_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="config file .*missing.yaml not found"):
        load_experiments(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiments: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_experiments(bad)
    bad.write_text("experiments:\n  - name: a\n    arms: [{name: x}]\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: experiments\[0\] \(a\).arms must be"):
        load_experiments(bad)
