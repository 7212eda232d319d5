"""Exploration in the recommendation service (real models and Feast): an exploring answer
names its policy, seed and exact propensities (debug view), a seed replays it, its exposures
and decision pass the lake's checks with the propensities of the policy's law, the greedy
part of its list is the answer without exploration; the stream worker's bandit learns from a
real Redis within a batch and the service reads the new parameters."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pytest
import requests
from recommendation_support import generous_config, running_recommender, serve_app

from recsys.data.schemas import DECISIONS, EXPOSURES
from recsys.exploration import Policy, parse_policy
from recsys.exploration.bandit_store import BanditStore
from recsys.exploration.features import DIMENSION
from recsys.stream.config import StreamConfig
from recsys.stream.records import ACCEPTED, check_records
from recsys.stream.redis_connection import connect, stop_embedded
from serving.recommendations.app import create_app
from serving.recommendations.exploration import BanditParameters
from serving.recommendations.exposure_log import decision_record, exposure_records
from serving.recommendations.pipeline import RecommendationRequest
from serving.recommendations.queries import user_history
from stream_worker.bandit_updates import BanditLearner

SOFTMAX = "softmax:temperature=0.05,max_explored_share=0.5,pool=30"
LINUCB = "linucb:alpha=1,temperature=0.1,max_explored_share=0.3,pool=30"


@pytest.fixture(scope="module")
def exploring(service_files):
    with running_recommender(generous_config(service_files, exploration=SOFTMAX,
                                             experiments_overrides=True)) as service:
        yield service


@pytest.fixture(scope="module")
def user(small_data):
    return str(small_data.train["user_id"].value_counts().index[0])


def test_debug_view_names_the_draw_and_a_seed_replays_it(exploring, user):
    with serve_app(create_app(exploring)) as url:
        post = lambda body: requests.post(f"{url}/v1/recommendations", json=body, timeout=30)  # noqa: E731
        first = post({"user_id": user, "k": 8, "debug": True}).json()
        draw = first["exploration"]
        assert draw["policy"] == parse_policy(SOFTMAX).canonical()
        assert draw["list_size"] == 30 and len(draw["slots"]) == 8
        ranks = [s["rank"] for s in draw["slots"]]
        assert ranks[:4] == [0, 1, 2, 3]  # half the slots are the ranked list's own
        assert len(set(ranks)) == 8
        for slot, item in zip(draw["slots"], first["items"]):
            assert 0 < slot["propensity"] <= 1 and 0 < slot["cascade_propensity"] <= 1
            assert slot["explored"] == (slot["rank"] != slot["position"])
            assert any("explored" in r for r in item["reasons"]) == slot["explored"]
        assert [s["propensity"] for s in draw["slots"][:4]] == [1.0] * 4
        again = post({"user_id": user, "k": 8, "seed": draw["seed"], "debug": True}).json()
        assert [i["item_id"] for i in again["items"]] == [i["item_id"] for i in first["items"]]
        assert "exploration" not in post({"user_id": user, "k": 8}).json()
        refused = post({"user_id": user, "k": 8, "seed": -1})
        assert refused.status_code == 422 and refused.json()["detail"][0]["field"] == "body.seed"


def test_seeds_are_refused_without_overrides(service_files, user):
    with running_recommender(generous_config(service_files, exploration=SOFTMAX)) as service:
        with serve_app(create_app(service)) as url:
            answer = requests.post(f"{url}/v1/recommendations",
                                   json={"user_id": user, "seed": 3}, timeout=30)
    assert answer.status_code == 403 and answer.json()["error"] == "overrides_off"


def test_exposures_and_decision_pass_the_lake_checks_with_the_policy_propensities(
        exploring, user):
    result = exploring.recommend(RecommendationRequest(user, k=8, seed=12345))
    decision = result.exploration
    assert decision is not None and decision.seed == 12345
    shown = dt.datetime.now(dt.timezone.utc)
    exposures = exposure_records("req-x", shown, result, {})
    record = decision_record("req-x", shown, result)
    for rows, spec in ((exposures, EXPOSURES), ([record], DECISIONS)):
        checked = check_records(rows, spec)
        assert [o.status for o in checked.outcomes] == [ACCEPTED] * len(rows), \
            checked.rejected
    policy = Policy(parse_policy(SOFTMAX))
    scores = np.array(record["list_scores"])
    marginals = policy.marginals(scores, 8)
    expected = marginals[np.arange(8), record["ranks"]]
    assert np.allclose([e["propensity"] for e in exposures], expected, rtol=1e-6)
    assert np.allclose(record["propensities"], expected)
    assert [e["rank"] for e in exposures] == record["ranks"]
    assert {e["policy"] for e in exposures} == {record["policy"]}
    assert [e["item_id"] for e in exposures] == [record["list_item_ids"][r]
                                                 for r in record["ranks"]]
    # the list's first k is the answer the service gives without exploring
    plain = exploring.exploration
    exploring.exploration = parse_policy("none")
    try:
        greedy = exploring.recommend(RecommendationRequest(user, k=8))
    finally:
        exploring.exploration = plain
    assert greedy.exploration is None
    assert [c.item_id for c in greedy.items] == record["list_item_ids"][:8]


def test_other_categories_show_items_the_ranked_list_does_not_hold(service_files, user):
    spec = "epsilon-greedy:epsilon=1,max_explored_share=0.5,pool=1,other_categories=3"
    with running_recommender(generous_config(service_files, exploration=spec)) as service:
        result = service.recommend(RecommendationRequest(user, k=8, seed=77))
        again = service.recommend(RecommendationRequest(user, k=8, seed=77))
        consumed = set(user_history(service.features.user(user), int(time.time()),
                                    service.cfg.max_history).item_ids)
    assert consumed  # the user has a history, which the drawn items must leave out
    record = decision_record("req-o", dt.datetime.now(dt.timezone.utc), result)
    assert [c.item_id for c in again.items] == [c.item_id for c in result.items]
    assert record["list_sources"][8:] == ["exploration"] * 3
    drawn_categories = record["list_categories"][8:]
    assert len(set(drawn_categories)) == 3
    assert not set(drawn_categories) & set(record["list_categories"][:8])
    assert not set(record["list_item_ids"][8:]) & (set(record["list_item_ids"][:8]) | consumed)
    # epsilon 1: the first slots explore until the 3 drawn items are shown
    assert sorted(record["ranks"][:3]) == [8, 9, 10] and record["ranks"][3:] == [3, 4, 5, 6, 7]
    exposures = exposure_records("req-o", dt.datetime.now(dt.timezone.utc), result, {})
    checked = check_records(exposures, EXPOSURES)
    assert [o.status for o in checked.outcomes] == [ACCEPTED] * len(exposures)
    # given the ranked list: the policy's over the whole list times the draw's inclusion
    marginals = Policy(parse_policy(spec)).marginals(np.array(record["list_scores"]), 8)
    draw = result.exploration.draw
    assert draw.drawn == 3 and draw.eligible >= 3
    included = np.where(np.array(record["ranks"]) >= 8, 3 / draw.eligible, 1.0)
    assert np.allclose([e["propensity"] for e in exposures],
                       marginals[np.arange(8), record["ranks"]] * included)
    # each drawn item is equally likely in each explored slot, once drawn
    assert [e["propensity"] for e in exposures][:3] == pytest.approx([1 / draw.eligible] * 3)


def test_the_bandit_learns_from_decisions_and_rewards_within_a_batch(service_files, user,
                                                                     tmp_path):
    cfg = StreamConfig(embedded_dir=tmp_path / "redis")
    client = connect(cfg)
    try:
        store = BanditStore(client)
        parameters = BanditParameters(store, poll_s=0.1)
        with running_recommender(generous_config(service_files, exploration=LINUCB)) as svc:
            svc.explorer.bandit = parameters
            result = svc.recommend(RecommendationRequest(user, k=10))
        record = decision_record("req-b", dt.datetime.now(dt.timezone.utc), result)
        assert record["bandit_updates"] == 0  # the prior: no statistics yet
        prior = parameters.snapshot(1.0)
        learner = BanditLearner(store)
        window = parse_policy(LINUCB).explorable_slots(10)
        report = learner.apply([record], [])
        assert report.shown == window
        slot = 10 - window  # the first bandit slot, clicked
        click = {"event_id": "e1", "event_type": "click", "request_id": "req-b",
                 "position": slot}
        impression = {**click, "event_id": "e0", "event_type": "impression"}
        other = {**click, "event_id": "e2", "position": 0}  # not a bandit slot
        report = learner.apply([], [impression, click, other])
        assert (report.rewarded, report.unknown_slots) == (1, 1)
        assert parameters.refresh()
        sums = store.read()
        assert sums.shown == window and sums.xtx.shape == (DIMENSION, DIMENSION)
        clicked_x = learner.store.shown_features([("req-b", slot)])[0]
        assert np.allclose(sums.xtr, clicked_x)
        # counted once: the same decision and events again add nothing
        learner.apply([record], [click])
        assert store.read().shown == window and np.allclose(store.read().xtr, clicked_x)
        after = parameters.snapshot(1.0)
        assert after.updates == window and not np.allclose(after.theta, prior.theta)
    finally:
        client.close()
        stop_embedded(tmp_path / "redis")
