"""The service's user reads: the provider's ``online_read`` per view gives exactly what
Feast's ``get_online_features(...).to_dict()`` gives, on the embedded SQLite store and on
Redis, for known users, unknown users and users some views have no row for; a store that is
down is one error kind."""

from __future__ import annotations

import pytest
from recommendation_support import PrivateRedis, redis_profile

from serving.recommendations.online_features import FeatureStoreUnavailable, OnlineFeatures


def _users(small_data) -> list[str]:
    known = small_data.train["user_id"].drop_duplicates().tolist()
    return known[:40] + known[-10:] + ["never-seen-user", ""]


def _assert_same_reads(features: OnlineFeatures, users: list[str]) -> None:
    seen_values = 0
    for user in users:
        fast, reference = features.user(user), features.user_through_feast(user)
        assert fast == reference, user
        assert {k: type(v) for k, v in fast.items()} == {
            k: type(v) for k, v in reference.items()}  # 1 == 1.0, but not the same value
        seen_values += sum(v is not None for v in fast.values())
    assert seen_values > 0  # not a comparison of empty reads


def test_user_reads_equal_feasts_on_sqlite(service_files, small_data):
    features = OnlineFeatures(service_files.repo)
    _assert_same_reads(features, _users(small_data))
    assert all(v is None for v in features.user("never-seen-user").values())


def test_user_reads_equal_feasts_on_redis(service_files, small_data, tmp_path):
    redis = PrivateRedis(tmp_path / "redis").start()
    try:
        repo = redis_profile(service_files, redis.port, tmp_path / "feature_repo_redis")
        features = OnlineFeatures(repo)
        _assert_same_reads(features, _users(small_data))
        redis.kill()
        with pytest.raises(FeatureStoreUnavailable, match="online store read failed"):
            features.user(_users(small_data)[0])
    finally:
        redis.stop()
