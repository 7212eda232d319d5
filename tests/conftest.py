"""Shared fixtures: small deterministic data sets written by the tests themselves."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from recsys.data.lake import Lake
from recsys.data.rules import ValidationPolicy

SHARED_MOVIELENS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / (
    "ml-latest-small")
NOW = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.timezone.utc)


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
