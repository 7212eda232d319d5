"""Experiments in the recommendation service: the definitions file checked against the
service, followed while it runs (a bad new file refused, the running experiments kept), every
change recorded once, and each arm's changes applied to the real pipeline (real models, Feast
and popular lists), named in the response."""

from __future__ import annotations

import json

import pytest
import requests

from recommendation_support import generous_config, running_recommender, serve_app
from recsys.errors import ConfigError
from serving.recommendations.app import create_app
from serving.recommendations.experiments import ExperimentsFile
from serving.recommendations.pipeline import RecommendationRequest
from serving.recommendations.rules import RulesConfig

PIPELINE_ARMS = """
experiments:
  - name: pipeline-depth
    layer: pipeline
    arms:
      - {name: full}
      - {name: retrieval-order, changes: {pipeline: retrieval}}
      - {name: popular-only, changes: {pipeline: popular}}
  - name: fusion
    layer: ranking
    arms:
      - {name: control}
      - {name: retrieval-heavy, changes: {retrieval_weight: 5.0, retrieval_candidates: 30,
                                          rules: {max_per_category: 1.0}}}
"""


def _log(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_arms_the_service_cannot_serve_are_refused_naming_the_field(tmp_path):
    path = tmp_path / "experiments.yaml"
    path.write_text("experiments:\n  - name: a\n    arms:\n      - {name: x}\n"
                    "      - {name: y, changes: {rules: {max_per_categry: 0.5}}}\n")
    with pytest.raises(ConfigError, match=r"experiments.yaml: a.arms\[1\] \(y\).changes."
                                          r"unknown key\(s\) in config section 'rules': "
                                          r"max_per_categry"):
        ExperimentsFile(path, RulesConfig())
    path.write_text("experiments:\n  - name: a\n    arms:\n      - {name: x}\n"
                    "      - {name: y, changes: {rules: {max_per_category: 2}}}\n")
    with pytest.raises(ConfigError, match=r"max_per_category must be a number in \(0, 1\]"):
        ExperimentsFile(path, RulesConfig())
    path.write_text("experiments:\n  - name: a\n    arms:\n      - {name: x}\n"
                    "      - {name: y, changes: {model_label: canary}}\n")
    with pytest.raises(ConfigError, match=r"a.arms\[1\] \(y\).changes.model_label 'canary': "
                                          r"not a version label this service serves \(it "
                                          "serves none: labels come from its "
                                          "model_config_file"):
        ExperimentsFile(path, RulesConfig(), labels=set())
    with pytest.raises(ConfigError, match="experiments file .*missing.yaml not found"):
        ExperimentsFile(tmp_path / "missing.yaml", RulesConfig())


def test_a_changed_file_is_followed_a_bad_one_refused_and_every_change_recorded(tmp_path):
    path, outcomes = tmp_path / "experiments.yaml", []
    path.write_text(PIPELINE_ARMS)
    served = ExperimentsFile(path, RulesConfig(), on_reload=outcomes.append)
    change_log = tmp_path / "experiments.yaml.changes.jsonl"
    assert [(e["experiment"], e["change"]) for e in _log(change_log)] == [
        ("pipeline-depth", "added"), ("fusion", "added")]
    # another process (or a restart) loading the same file records nothing
    ExperimentsFile(path, RulesConfig())
    assert len(_log(change_log)) == 2
    assert served.poll() is False  # unchanged content

    path.write_text(PIPELINE_ARMS.replace("layer: ranking", "layer: ranking\n    traffic: 0.5")
                    .split("  - name: pipeline-depth")[0] + "  - name: fusion" +
                    PIPELINE_ARMS.split("  - name: fusion")[1].replace(
                        "layer: ranking", "layer: ranking\n    traffic: 0.5"))
    assert served.poll() is True and outcomes == ["loaded"]
    assert [e.name for e in served.definitions.experiments] == ["fusion"]
    assert served.definitions.experiments[0].traffic == 0.5
    assert [(e["experiment"], e["change"]) for e in _log(change_log)[2:]] == [
        ("pipeline-depth", "removed"), ("fusion", "changed")]
    assert _log(change_log)[3]["definition"]["traffic"] == 0.5

    before = served.assigner
    path.write_text("experiments:\n  - name: fusion\n    traffic: 2\n    arms: [{name: a}]\n")
    assert served.poll() is False and outcomes == ["loaded", "refused"]
    assert served.assigner is before  # the running experiments are kept
    assert served.poll() is False and outcomes == ["loaded", "refused"]  # refused once
    assert len(_log(change_log)) == 4


@pytest.fixture(scope="module")
def service(service_files, tmp_path_factory):
    path = tmp_path_factory.mktemp("experiments") / "experiments.yaml"
    path.write_text(PIPELINE_ARMS)
    with running_recommender(generous_config(service_files, experiments=str(path))) as service:
        yield service


def _users_by_arm(service, users, experiment: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    definitions = service.experiments.definitions.by_name()[experiment]
    for user in users:
        found.setdefault(service.experiments.assigner.arm_of(definitions, user), []).append(
            user)
    return found


def _fallbacks(service) -> float:
    return sum(s.value for m in service.metrics.fallbacks.collect() for s in m.samples
               if s.name.endswith("_total"))


def test_each_pipeline_arm_serves_its_tier_and_is_not_a_fallback(service, small_data):
    users = small_data.train["user_id"].value_counts().index[:300].tolist()
    by_arm = _users_by_arm(service, users, "pipeline-depth")
    before = _fallbacks(service)
    expected = {"full": "full", "retrieval-order": "retrieval"}
    for arm, tier in expected.items():
        result = service.recommend(RecommendationRequest(by_arm[arm][0], k=8))
        assert result.experiments["pipeline-depth"] == arm
        assert (result.tier, result.degraded, len(result.items)) == (tier, [], 8)
    popular = service.recommend(RecommendationRequest(by_arm["popular-only"][0], k=8))
    assert popular.tier in ("segment-popular", "global-popular") and popular.degraded == []
    assert "retrieval" not in popular.latency_ms and len(popular.items) == 8
    assert _fallbacks(service) == before


def test_fusion_weight_candidate_count_and_rules_of_an_arm(service, small_data):
    users = small_data.train["user_id"].value_counts().index[:300].tolist()
    depth = _users_by_arm(service, users, "pipeline-depth")
    full_users = set(depth["full"])
    fusion = _users_by_arm(service, [u for u in users if u in full_users], "fusion")
    user = fusion["retrieval-heavy"][0]
    treated = service.recommend(RecommendationRequest(user, k=10))
    assert treated.experiments == {"pipeline-depth": "full", "fusion": "retrieval-heavy"}
    # the same user with the arm's changes taken away: what the control arm would serve
    control_file = service.experiments
    try:
        service.experiments = ExperimentsFile(None, service.cfg.rules)
        control = service.recommend(RecommendationRequest(user, k=10))
    finally:
        service.experiments = control_file
    assert control.experiments == {} and control.tier == treated.tier == "full"
    assert [c.score for c in treated.items] != [c.score for c in control.items]
    key = [k for k in service.retrieval_cache._entries if k[0] == user][-1]
    first_30 = set(service.retrieval_cache._entries[key][0].item_ids[:30])
    two_tower = [c.item_id for c in treated.items if c.source == "two-tower"]
    assert two_tower and set(two_tower) <= first_30  # ranked among the first 30 only


def test_the_response_names_the_arms(service, small_data):
    user = small_data.train["user_id"].value_counts().index[0]
    with serve_app(create_app(service)) as url:
        body = requests.post(f"{url}/v1/recommendations", json={"user_id": user, "k": 3},
                             timeout=30).json()
    arms = {name: service.experiments.assigner.arm_of(e, user)
            for name, e in service.experiments.definitions.by_name().items()}
    assert body["experiments"] == arms


def test_forced_arms_are_served_only_when_overrides_are_on_and_never_logged(service,
                                                                            small_data):
    from serving.recommendations.exposure_log import ExposureLog
    from serving.recommendations.metrics import ServiceMetrics

    user = small_data.train["user_id"].value_counts().index[1]
    hashed = service.experiments.assigner.arm_of(
        service.experiments.definitions.by_name()["pipeline-depth"], user)
    other = next(a for a in ("full", "retrieval-order") if a != hashed)
    metrics = ServiceMetrics()
    exposures = ExposureLog(None, metrics)  # counts what it is given: dropped, no stream
    body = {"user_id": user, "k": 3, "arms": {"pipeline-depth": other}}
    try:
        with serve_app(create_app(service, exposures=exposures)) as url:
            off = requests.post(f"{url}/v1/recommendations", json=body, timeout=30)
        assert off.status_code == 403 and off.json()["error"] == "overrides_off"
        service.cfg = service.cfg.replace(experiments_overrides=True)
        try:
            with serve_app(create_app(service, exposures=exposures)) as url:
                forced = requests.post(f"{url}/v1/recommendations", json=body,
                                       timeout=30).json()
                bad = requests.post(f"{url}/v1/recommendations", json={
                    **body, "arms": {"pipeline-depth": "nonsense"}}, timeout=30)
                unknown = requests.post(f"{url}/v1/recommendations", json={
                    **body, "arms": {"no-such": "x"}}, timeout=30)
                plain = requests.post(f"{url}/v1/recommendations",
                                      json={"user_id": user, "k": 3}, timeout=30).json()
        finally:
            service.cfg = service.cfg.replace(experiments_overrides=False)
    finally:
        exposures.close()
    assert forced["experiments"]["pipeline-depth"] == other
    assert forced["tier"] == {"full": "full", "retrieval-order": "retrieval"}[other]
    assert plain["experiments"]["pipeline-depth"] == hashed
    assert bad.status_code == 422 and "has no arm 'nonsense'" in bad.text
    assert unknown.status_code == 422 and "no experiment 'no-such'" in unknown.text
    logged = sum(s.value for m in metrics.exposures.collect() for s in m.samples
                 if s.name.endswith("_total"))
    assert logged == 1  # the plain answer only


def test_an_interleaving_experiment_drafts_both_arms_into_one_answer(service, small_data,
                                                                     tmp_path):
    from serving.recommendations.exposure_log import exposure_records

    path = tmp_path / "interleaving.yaml"
    path.write_text("experiments:\n  - name: order\n    method: interleaving\n    arms:\n"
                    "      - {name: ranked}\n"
                    "      - {name: retrieval-order, changes: {pipeline: retrieval}}\n")
    user = small_data.train["user_id"].value_counts().index[2]
    running = service.experiments
    try:
        service.experiments = ExperimentsFile(path, service.cfg.rules)
        both = {arm: service.recommend(RecommendationRequest(
            user, k=10, forced_arms={"order": arm})) for arm in ("ranked", "retrieval-order")}
        answer = service.recommend(RecommendationRequest(user, k=10))
    finally:
        service.experiments = running
    assert both["ranked"].tier == "full" and both["retrieval-order"].tier == "retrieval"
    assert answer.experiments == {"order": "interleaved"} and answer.tier == "full"
    ids = [c.item_id for c in answer.items]
    assert len(ids) == len(set(ids)) == 10
    for arm in ("ranked", "retrieval-order"):  # each team's items in its own arm's order
        own = [c.item_id for c in answer.items if c.team == arm]
        listed = [c.item_id for c in both[arm].items]
        assert own and all(i in listed for i in own)
        assert own == sorted(own, key=listed.index)
    records = exposure_records("r1", __import__("datetime").datetime.now(), answer, {})
    assert [r["team"] for r in records] == [c.team for c in answer.items]


def _second_version(base, root):
    """A copy of the exported models with each artifact's version 1 also as version 2."""
    import shutil

    from recsys.model_contract.manifest import MANIFEST

    copy = root / "models"
    shutil.copytree(base, copy)
    for artifact in ("retrieval", "item_tower", "ranker", "retrieval_portable"):
        if (copy / artifact / "1").is_dir():
            shutil.copytree(copy / artifact / "1", copy / artifact / "2")
            manifest = copy / artifact / "2" / MANIFEST
            manifest.write_text(json.dumps({**json.loads(manifest.read_text()),
                                            "version": 2}))
    return copy


LABELS = """
model_config_list {
  config { name: "retrieval" base_path: "BASE/retrieval" model_platform: "tensorflow"
           model_version_policy { specific { versions: 1 versions: 2 } }
           version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 } }
  config { name: "item_tower" base_path: "BASE/item_tower" model_platform: "tensorflow"
           version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 } }
}
"""


def test_an_arm_is_served_from_the_versions_its_label_names(service_files, small_data,
                                                             tmp_path):
    base = _second_version(service_files.base, tmp_path)
    config = tmp_path / "models.config"
    config.write_text(LABELS.replace("BASE", str(base)))
    path = tmp_path / "experiments.yaml"
    path.write_text("experiments:\n  - name: model\n    arms:\n      - {name: latest}\n"
                    "      - {name: stable, changes: {model_label: stable}}\n")
    cfg = generous_config(service_files, model_base_path=base, experiments=str(path),
                          model_config_file=str(config))
    users = small_data.train["user_id"].value_counts().index[:60].tolist()
    with running_recommender(cfg) as service:
        assert set(service.labelled) == {"stable"}  # the labels the arms name, loaded
        assert service.labelled["stable"].user_cache is service.user_cache
        assert service.labelled["stable"].retrieval_cache is not service.retrieval_cache
        by_arm = _users_by_arm(service, users, "model")
        latest = service.recommend(RecommendationRequest(by_arm["latest"][0], k=5))
        stable = service.recommend(RecommendationRequest(by_arm["stable"][0], k=5))
        # a reloaded file naming another label of the file: its pipeline is made first
        path.write_text(path.read_text().replace("model_label: stable",
                                                 "model_label: canary"))
        assert service.experiments.poll()
        assert set(service.labelled) == {"stable", "canary"}
        canary = service.recommend(RecommendationRequest(by_arm["stable"][0], k=5))
        # a label the file does not have: refused, the running definitions kept
        path.write_text(path.read_text().replace("model_label: canary",
                                                 "model_label: nightly"))
        assert not service.experiments.poll()
        still = service.recommend(RecommendationRequest(by_arm["stable"][0], k=5))
        counted = {(s.labels["model_label"], s.labels["tier"]): s.value
                   for metric in service.metrics.label_requests.collect()
                   for s in metric.samples if s.name.endswith("_total")}
        cpu = {s.labels["model_label"]: s.value
               for metric in service.metrics.label_cpu.collect()
               for s in metric.samples if s.name.endswith("_total")}
        late = service.late(RecommendationRequest(by_arm["stable"][0], k=5), 0.3)
    assert late.degraded[0].startswith("deadline") and late.model_label == "canary"
    assert latest.experiments == {"model": "latest"} and stable.experiments == {
        "model": "stable"}
    assert latest.model_versions == {"retrieval": 2, "ranker": 2}
    assert stable.model_versions == {"retrieval": 1, "ranker": 1}
    assert canary.model_versions == still.model_versions == {"retrieval": 2, "ranker": 2}
    assert (canary.model_label, still.model_label) == ("canary", "canary")
    assert stable.tier == latest.tier == canary.tier == "full"
    assert counted == {("default", "full"): 1.0, ("stable", "full"): 1.0,
                       ("canary", "full"): 2.0}
    # each pipeline's CPU, under the label that served it (the canary's cost guardrail)
    assert set(cpu) == {"default", "stable", "canary"} and min(cpu.values()) > 0
    path.write_text("experiments:\n  - name: model\n    arms:\n      - {name: a}\n"
                    "      - {name: b, changes: {model_label: nightly}}\n")
    with pytest.raises(ConfigError, match=r"model_label 'nightly': not a version label this "
                                          r"service serves \(it serves \['canary', 'stable'\]"):
        ExperimentsFile(path, RulesConfig(), labels={"stable", "canary"})


def test_a_label_must_name_one_exported_model(tmp_path):
    from serving.recommendations.model_labels import label_versions

    config = tmp_path / "models.config"
    config.write_text(LABELS.replace('key: "canary" value: 2 } }\n}',
                                     'key: "canary" value: 1 } }\n}'))
    with pytest.raises(ConfigError, match=r"label 'canary' must name the same version of "
                                          r"retrieval and item_tower .*'retrieval': 2, "
                                          r"'item_tower': 1"):
        label_versions(config)
    config.write_text("model_config_list { config { name: 'retrieval' ")
    with pytest.raises(ConfigError, match="Invalid protobuf file"):
        label_versions(config)
    config.write_text(LABELS)
    assert label_versions(config) == {"canary": {"retrieval": 2, "item_tower": 2},
                                      "stable": {"retrieval": 1, "item_tower": 1}}


def test_forced_arm_names_are_bounded():
    from pydantic import ValidationError

    from serving.recommendations.app import RecommendationBody

    assert RecommendationBody.model_validate(
        {"user_id": "u", "arms": {"exp": "a"}}).arms == {"exp": "a"}
    for arms in ({"exp": "a" * 65}, {"e" * 65: "a"}, {"exp": ""},
                 {f"e{n}": "a" for n in range(65)}):
        with pytest.raises(ValidationError) as caught:
            RecommendationBody.model_validate({"user_id": "u", "arms": arms})
        assert caught.value.errors()[0]["loc"][0] == "arms"
        assert caught.value.errors()[0]["type"] in ("string_too_long", "string_too_short",
                                                    "too_long")


def test_the_retrieval_order_ranks_every_source_by_its_two_tower_score(service_files,
                                                                       small_data, tmp_path):
    """Trending candidates carry a popularity score of their own: in retrieval order they
    are ranked by the query's dot product with their embedding like the two-tower's own.
    Five two-tower candidates for ten places: the other sources must fill the list."""
    path = tmp_path / "experiments.yaml"
    path.write_text("experiments:\n  - name: depth\n    arms:\n"
                    "      - {name: full}\n"
                    "      - {name: short, changes: {pipeline: retrieval, "
                    "retrieval_candidates: 5}}\n")
    plain = RulesConfig(recency_boost=0.0, max_per_category=1.0, new_item_slots=0)
    cfg = generous_config(service_files, experiments=str(path), rules=plain,
                          profile_sample_rate=1.0, trending_candidates=50,
                          experiments_overrides=True)
    users = small_data.train["user_id"].value_counts().index[:20].tolist()
    with running_recommender(cfg) as service:
        for user in users:
            result = service.recommend(RecommendationRequest(
                user, k=10, forced_arms={"depth": "short"}))
            assert result.tier == "retrieval" and result.experiments == {"depth": "short"}
            sources = [c.source for c in result.items]
            assert sources.count("two-tower") <= 5 and "trending" in sources, sources
            _, query, _ = result.probe
            index = service.index
            scores = [float(index.vectors[index.position[c.item_id]] @ query)
                      for c in result.items]
            assert scores == sorted(scores, reverse=True), (user, sources, scores)
