"""Shared fixtures: small deterministic data sets written by the tests themselves."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from recsys.data.lake import Lake
from recsys.data.rules import ValidationPolicy

ROOT = Path(__file__).resolve().parents[1]
MOVIELENS_IN_SHARED = Path("shared") / "datasets" / "ml-latest-small"


def _shared_movielens() -> Path:
    """``../shared``'s MovieLens beside this repository, or beside the local repository it
    was cloned from (a clone in /tmp of a checkout under /work finds the checkout's)."""
    here = ROOT.parent / MOVIELENS_IN_SHARED
    if here.exists():
        return here
    import subprocess

    origin = subprocess.run(["git", "-C", str(ROOT), "config", "--get", "remote.origin.url"],
                            capture_output=True, text=True).stdout.strip()
    if origin and Path(origin).is_dir():
        beside_origin = Path(origin).resolve().parent / MOVIELENS_IN_SHARED
        if beside_origin.exists():
            return beside_origin
    return here


SHARED_MOVIELENS = _shared_movielens()
NOW = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.timezone.utc)


# The longest test files (minutes each) go first: spread over workers (pytest-xdist,
# --dist loadfile), a long file scheduled last runs alone at the end.
LONGEST_FIRST = ("test_quality_movielens.py", "test_cli.py", "test_warm_start.py",
                 "test_experiment_closed_loop.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files keep order


@pytest.fixture(scope="session", autouse=True)
def _stop_embedded_redis(tmp_path_factory):
    """The embedded Redis daemonizes and outlives the process that started it (by design:
    the API, the worker and the CLI share it). At the end of the session, stop every one the
    tests started under pytest's temporary directory (this worker's, under xdist)."""
    yield
    from recsys.stream.redis_connection import stop_embedded

    for pid_file in tmp_path_factory.getbasetemp().rglob("redis.pid"):
        stop_embedded(pid_file.parent)


@pytest.fixture
def policy() -> ValidationPolicy:
    """Validation with a fixed clock, so "in the future" does not depend on today."""
    return ValidationPolicy(now=NOW)


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake", create=True)


@pytest.fixture
def movielens_dir() -> Path:
    path = Path(os.environ.get("RECSYS_MOVIELENS_DIR", SHARED_MOVIELENS))
    if not (path / "ratings.csv").exists():
        message = f"MovieLens data not found at {path} (set RECSYS_MOVIELENS_DIR)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI must run the MovieLens tests")
        pytest.skip(message)
    return path


def event(**overrides) -> dict:
    """A valid event record; overrides replace or add fields."""
    record = {
        "event_id": "e1",
        "user_id": "u1",
        "item_id": "i1",
        "event_type": "click",
        "timestamp": "2026-10-01T12:00:00Z",
        "session_id": "s1",
        "dwell_time_s": 12.5,
        "position": 3,
        "device": "mobile",
        "country": "US",
        "language": "en",
    }
    record.update(overrides)
    return record


@pytest.fixture(scope="session")
def small_repo(tmp_path_factory) -> Path:
    """A feature repository built by Beam and applied with Feast from a small synthetic
    platform (temporal split), shared by the retrieval tests; treat it as read-only."""
    from retrieval_support import build_small_repo

    return build_small_repo(tmp_path_factory.mktemp("platform"))


@pytest.fixture(scope="session")
def small_data(small_repo):
    """The small platform's examples joined through Feast's ``retrieval`` service."""
    from trainer.training_data import load_retrieval_data

    return load_retrieval_data(small_repo)


@pytest.fixture(scope="session")
def trained_model_dir(small_data, tmp_path_factory) -> Path:
    """A two-tower model trained for two epochs on the small platform; read-only."""
    from retrieval_support import small_config
    from trainer.train import train_retrieval

    path = tmp_path_factory.mktemp("model") / "two_tower"
    train_retrieval(small_data, small_config(), path, progress=False)
    return path


@pytest.fixture(scope="session")
def trained_ranker(small_repo, small_data, trained_model_dir, tmp_path_factory):
    """The transformer ranker trained on the small platform for the two-tower model above
    (a ``RankingResult``; its stacking model trains 1 epoch of the two-tower model's 2);
    read-only."""
    from retrieval_support import small_ranker_config
    from trainer.ranking.workflow import train_ranking

    return train_ranking(small_repo, trained_model_dir, tmp_path_factory.mktemp("ranker"),
                         small_ranker_config(stacking_epochs=1), small_data, progress=False)


@pytest.fixture(scope="session")
def service_files(tmp_path_factory, small_repo, trained_model_dir, trained_ranker):
    """The small platform's models exported with the ranker, its popular lists and a private
    copy of its feature repository with the online store materialized."""
    from recommendation_support import build_service_files

    return build_service_files(tmp_path_factory.mktemp("service"), small_repo,
                               trained_model_dir, trained_ranker.ranker_dir)


@pytest.fixture
def setup(tmp_path):
    """The stream tests' world: a Feast repository, a lake and a private embedded Redis
    (``stream_support.StreamSetup``)."""
    from stream_support import stream_setup

    world = stream_setup(tmp_path)
    yield world
    world.close()
