"""The recommendation pipeline on the small platform's real models, Feast online store and
popular lists: tiers, cold start, exclusions, and degradation when a dependency is stopped,
killed or slowed past its deadline, then recovery."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
from recommendation_support import PrivateRedis, SlowModels, redis_profile
from serving_support import config_text, free_port, start_server

from serving.recommendations.config import ServiceConfig
from serving.recommendations.pipeline import RecommendationRequest
from serving.recommendations.service import build_recommender


@pytest.fixture(scope="module")
def files(service_files):
    return service_files


@pytest.fixture(scope="module")
def config(files):
    # generous budgets: these tests are about behaviour, not speed (a busy CI machine must
    # not turn a full answer into a fallback); the deadline test sets its own
    return ServiceConfig(repo=files.repo, model_base_path=files.base, reset_timeout_s=0.5,
                         failure_threshold=2, user_cache_ttl_s=0.2, request_deadline_ms=10_000,
                         features_timeout_ms=3_000, retrieval_timeout_ms=3_000,
                         ranking_timeout_ms=3_000)


@pytest.fixture(scope="module")
def recommender(config):
    service = build_recommender(config)
    yield service
    service.close()
    service.models.close()


@pytest.fixture(scope="module")
def active_user(small_data):
    return small_data.train["user_id"].value_counts().index[0]


def _fallbacks(service, tier: str) -> float:
    return sum(s.value for m in service.metrics.fallbacks.collect() for s in m.samples
               if s.name.endswith("_total") and s.labels["tier"] == tier)


def _until_full(service, request, attempts: int = 40):
    """Requests, a breaker reset timeout apart, until one is served by the full pipeline (a
    restarted dependency's first calls may still miss their deadline: they warm it up)."""
    for _ in range(attempts):
        time.sleep(0.6)
        result = service.recommend(request)
        if result.tier == "full":
            return result
    raise AssertionError(f"not recovered: {result.degraded}")


def test_a_known_user_gets_k_ranked_items_none_consumed(recommender, active_user):
    result = recommender.recommend(RecommendationRequest(active_user, k=10))
    assert result.tier == "full" and not result.degraded and not result.cold_start
    assert len(result.items) == 10 and len({c.item_id for c in result.items}) == 10
    user = recommender.features.user(active_user)
    consumed = set(user["session_recent_item_ids"])
    assert consumed and not consumed & {c.item_id for c in result.items}
    assert set(result.model_versions) == {"retrieval", "ranker"}
    assert {"features", "retrieval", "candidates", "ranking", "rules", "total"} <= set(
        result.latency_ms)
    assert {c.source for c in result.items} <= {"two-tower", "trending"}
    scores = [c.score for c in result.items]
    assert scores == sorted(scores, reverse=True) or any(
        "diversity cap relaxed" in r for c in result.items for r in c.reasons)


def test_exclusions_are_never_returned(recommender, active_user):
    first = recommender.recommend(RecommendationRequest(active_user, k=5))
    excluded = [c.item_id for c in first.items]
    second = recommender.recommend(RecommendationRequest(active_user, k=5, exclude=excluded))
    assert len(second.items) == 5 and not set(excluded) & {c.item_id for c in second.items}


def test_an_unknown_user_is_a_cold_start_with_declared_categories(recommender):
    category = recommender.index.categories[0]
    result = recommender.recommend(RecommendationRequest(
        "nobody-ever", k=10, context={"country": "US"}, preferred_categories=[category]))
    assert result.cold_start and result.tier == "full" and len(result.items) == 10
    sources = {c.source for c in recommender._cold_start({}, type(
        "H", (), {"categories": [], "item_ids": []})(), {"country": "US"}, [category], set())}
    assert {"segment-popular", "category-centroid"} <= sources


def test_feature_store_stopped_then_back(files, config, tmp_path):
    """The production online store (Redis) is killed mid-traffic, then restarted."""
    redis = PrivateRedis(tmp_path / "redis").start()
    try:
        repo = redis_profile(files, redis.port)
        service = build_recommender(dataclasses.replace(config, repo=repo))
        try:
            assert service.recommend(RecommendationRequest("u000012", k=7)).tier == "full"
            redis.kill()
            time.sleep(0.3)  # the user cache's TTL
            before = _fallbacks(service, "segment-popular") + _fallbacks(service,
                                                                         "global-popular")
            for _ in range(3):  # the breaker opens after 2 failures: no more store calls
                result = service.recommend(RecommendationRequest(
                    "u000012", k=7, context={"country": "US"}))
                assert len(result.items) == 7
                assert result.tier in ("segment-popular", "global-popular")
                assert result.degraded[0].startswith("features:")
            assert "circuit breaker feature_store is open" in result.degraded[0]
            after = _fallbacks(service, "segment-popular") + _fallbacks(service,
                                                                        "global-popular")
            assert after == before + 3
            redis.start()
            _until_full(service, RecommendationRequest("u000012", k=7))
            assert service.breakers["feature_store"].state == "closed"
        finally:
            service.close()
            service.models.close()
    finally:
        redis.stop()


def test_model_server_killed_then_back(files, config, tmp_path):
    """Retrieval and ranking over gRPC to a real model server that is stopped, then started
    again on the same port."""
    models = {n: files.base / n for n in ("retrieval", "item_tower", "ranker")}
    model_config = tmp_path / "models.config"
    model_config.write_text(config_text(models))
    port = free_port()
    server = start_server(port=port, rest_api_port=0, model_config_file=str(model_config))
    service = build_recommender(dataclasses.replace(config, model_server=f"127.0.0.1:{port}"))
    try:
        assert service.recommend(RecommendationRequest("u000012", k=8)).tier == "full"
        server.stop()
        time.sleep(0.3)  # past the retrieval cache's TTL
        for _ in range(3):
            result = service.recommend(RecommendationRequest("u000012", k=8))
            assert len(result.items) == 8 and result.tier in ("segment-popular",
                                                              "global-popular")
            assert result.degraded[0].startswith("retrieval:")
        assert "circuit breaker model_server is open" in result.degraded[0]
        consumed = set(service.features.user("u000012")["session_recent_item_ids"])
        assert not consumed & {c.item_id for c in result.items}
        server = start_server(port=port, rest_api_port=0, model_config_file=str(model_config))
        recovered = _until_full(service, RecommendationRequest("u000012", k=8))
        assert recovered.model_versions == {"retrieval": 1, "ranker": 1}
    finally:
        service.close()
        service.models.close()
        server.stop()


def test_a_slow_ranker_is_cut_at_its_deadline(config, active_user):
    service = build_recommender(dataclasses.replace(config, ranking_timeout_ms=150))
    real = service.models
    service.models = SlowModels(real, {"ranker": 2.0})
    try:
        before = _fallbacks(service, "retrieval")
        started = time.perf_counter()
        result = service.recommend(RecommendationRequest(active_user, k=10))
        elapsed = time.perf_counter() - started
        assert result.tier == "retrieval" and len(result.items) == 10
        assert result.degraded == ["ranking: no answer within 150 ms"]
        assert elapsed < 2.0  # answered without waiting for the slow ranker
        counted = [(s.labels, s.value) for m in service.metrics.fallbacks.collect()
                   for s in m.samples if s.name.endswith("_total")]
        assert _fallbacks(service, "retrieval") - before == 1, counted
        service.models = real
        _until_full(service, RecommendationRequest(active_user, k=10))
    finally:
        service.close()
        real.close()


def test_a_slow_ranker_is_cut_by_the_batchers_own_timeout(config, active_user):
    """Models in process with batching hold each call to its budget themselves, so the
    pipeline calls them in the request's thread: a ranker whose call does not finish is cut
    by the batch queue's timeout, named like any missed deadline."""
    service = build_recommender(dataclasses.replace(config, ranking_timeout_ms=150))
    assert service.models.enforces_timeouts
    servable = service.models.core.manager("ranker").resolve(None, None)
    release = threading.Event()
    real_run = servable.run
    servable.run = lambda *args, **kwargs: release.wait(30) and real_run(*args, **kwargs)
    try:
        result = service.recommend(RecommendationRequest(active_user, k=10))
        assert result.tier == "retrieval" and len(result.items) == 10
        assert result.degraded == ["ranking: no answer within 150 ms"]
        assert result.model_versions == {"retrieval": 1}
    finally:
        release.set()
        del servable.run
        service.close()
        service.models.close()


def test_k_larger_than_the_candidates_is_topped_up_from_popular(recommender, active_user):
    result = recommender.recommend(RecommendationRequest(active_user, k=90))
    assert len(result.items) == 90 and len({c.item_id for c in result.items}) == 90


def test_requests_over_the_in_flight_limit_are_shed_to_popular(config, active_user):
    service = build_recommender(dataclasses.replace(config, max_in_flight=1))
    real = service.models
    service.models = SlowModels(real, {"ranker": 1.0})
    try:
        import threading

        first = threading.Thread(target=service.recommend,
                                 args=(RecommendationRequest(active_user, k=5),))
        first.start()
        time.sleep(0.3)  # the first request is in the (slowed) ranker
        shed = service.recommend(RecommendationRequest(active_user, k=5, exclude=["x"],
                                                       context={"country": "US"}))
        first.join()
        assert shed.tier in ("segment-popular", "global-popular") and len(shed.items) == 5
        assert shed.degraded == ["overload: 1 requests already in the pipeline"]
        assert shed.model_versions == {} and set(shed.latency_ms) == {"total"}
        overloads = sum(s.value for m in service.metrics.fallbacks.collect() for s in m.samples
                        if s.name.endswith("_total") and s.labels["reason"] == "overload")
        assert overloads == 1
        service.models = real
        assert service.recommend(RecommendationRequest(active_user, k=5)).tier == "full"
    finally:
        service.close()
        real.close()


def test_a_timeout_of_a_stage_cut_short_by_a_late_request_does_not_count_against_it(
        config, active_user):
    """A request that waited long (queued_s) gives the ranker less than its budget: when
    that runs out, the request degrades, but the breaker counts no failure of the ranker
    (threshold 2, three such timeouts: still closed)."""
    service = build_recommender(config)
    real = service.models
    service.models = SlowModels(real, {"ranker": 1.0})
    try:
        for _ in range(3):
            result = service.recommend(RecommendationRequest(active_user, k=5, queued_s=9.3))
            assert result.tier == "retrieval"
            assert result.degraded[0].startswith("ranking: no answer within")
        assert service.breakers["ranker"].state == "closed"
        assert service.breakers["ranker"].snapshot()["consecutive_failures"] == 0
    finally:
        service.close()
        real.close()


def test_time_spent_queued_counts_against_the_deadline(recommender, active_user):
    result = recommender.recommend(RecommendationRequest(active_user, k=6, queued_s=11.0))
    assert len(result.items) == 6 and result.tier in ("segment-popular", "global-popular")
    assert result.degraded[0] == "features: no answer within 0 ms"
    assert result.latency_ms["queued"] == 11_000.0


def test_the_service_follows_the_model_server_to_a_new_version(files, config, tmp_path,
                                                               trained_model_dir,
                                                               trained_ranker, active_user):
    import shutil

    from recsys.features.catalogue import read_catalogue
    from trainer.export import export_models
    from trainer.model_dir import ModelDir
    from trainer.ranking.ranker_dir import RankerDir
    from trainer.scann_config import ScannConfig

    base = tmp_path / "models"
    shutil.copytree(files.base, base)
    service = build_recommender(dataclasses.replace(config, model_base_path=base))
    try:
        assert service.index.version == 1
        directory = ModelDir(trained_model_dir)
        export_models(directory.restore()[2], read_catalogue(files.repo / "data"),
                      directory.data_end_us(), base, k=50, scann=ScannConfig(exact=True),
                      ranker=RankerDir(trained_ranker.ranker_dir).restore())
        deadline = time.monotonic() + 120
        want = {"retrieval": 2, "ranker": 2}  # each model loads the new version on its own
        while time.monotonic() < deadline:
            result = service.recommend(RecommendationRequest(active_user, k=10))
            if result.model_versions == want and service.index.version == 2:
                break
            time.sleep(0.5)
        assert (result.model_versions, service.index.version) == (want, 2)
        assert result.tier == "full" and service.refresher.refreshed >= 1
    finally:
        service.close()
        service.models.close()


def test_a_request_answered_at_its_deadline_is_not_run_or_counted_by_the_pipeline(
        recommender, active_user):
    """The endpoint answers a request from the popular lists at its deadline (``late``) when
    the pipeline has not: a pipeline thread that takes it afterwards gives its place back
    without running it, and the request is counted once."""
    def counted() -> float:
        return sum(s.value for m in recommender.metrics.requests.collect() for s in m.samples
                   if s.name.endswith("_total"))

    before = counted()
    request = RecommendationRequest(active_user, k=4)
    assert recommender.try_admit()
    late = recommender.late(request, 0.25)
    assert late.tier in ("segment-popular", "global-popular") and len(late.items) == 4
    assert late.degraded == ["deadline: no answer within 10000 ms"]
    assert late.latency_ms["queued"] == 250.0
    assert recommender.recommend_admitted(request) is None
    assert recommender.late(request, 0.3) is None  # answered once only
    assert counted() == before + 1
    places = [recommender.try_admit() for _ in range(recommender.cfg.max_in_flight)]
    assert all(places)  # every place is free again
    for _ in places:
        recommender.release()
    again = recommender.recommend(request)  # the sync API answers a request again, as a copy
    assert again.tier == "full" and counted() == before + 2
