"""VersionRefresher: one background rebuild at a time for the version retrieval answers with,
newer or older, retried with a growing delay when it fails."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from serving.recommendations.version_refresh import VersionRefresher


@dataclass
class _Index:
    version: int

    def __len__(self) -> int:
        return 3


class _Recommender:
    """Holds what the refresher swaps (the real Recommender's ``swap_models`` contract)."""

    def __init__(self, version: int):
        self.index, self.specs = _Index(version), f"specs v{version}"

    def swap_models(self, index, specs) -> None:
        self.index, self.specs = index, specs


def _wait(predicate, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_new_or_rolled_back_version_is_rebuilt_once_in_the_background():
    gate = threading.Event()
    calls = []

    def rebuild(version):
        calls.append(version)
        gate.wait(5)
        return _Index(version), f"specs v{version}"

    refresher = VersionRefresher(rebuild)
    service = _Recommender(1)
    assert not refresher.saw(1, service)  # the index's own version: nothing to do
    assert refresher.saw(2, service)
    assert not refresher.saw(2, service)  # one rebuild at a time
    assert service.index.version == 1  # requests keep the old index meanwhile
    gate.set()
    _wait(lambda: service.index.version == 2)
    assert service.specs == "specs v2" and calls == [2] and refresher.refreshed == 1
    assert refresher.saw(1, service)  # a rollback is followed too
    _wait(lambda: service.index.version == 1)
    assert calls == [2, 1]


def test_a_failed_rebuild_is_retried_after_a_growing_delay():
    outcomes = [RuntimeError("item_tower answers with version 1"), RuntimeError("still 1")]
    now = [100.0]

    def rebuild(version):
        if outcomes:
            raise outcomes.pop(0)
        return _Index(version), "specs"

    refresher = VersionRefresher(rebuild, retry_s=10, max_retry_s=15, clock=lambda: now[0])
    service = _Recommender(1)
    assert refresher.saw(2, service)
    _wait(lambda: refresher._failures == 1 and not refresher._running)
    now[0] += 9.9
    assert not refresher.saw(2, service)  # within the 10 s delay: not yet
    now[0] += 0.2
    assert refresher.saw(2, service)
    _wait(lambda: refresher._failures == 2 and not refresher._running)
    now[0] += 14.9
    assert not refresher.saw(2, service)  # the delay doubled, capped at 15 s
    now[0] += 0.2
    assert refresher.saw(2, service)
    _wait(lambda: service.index.version == 2)
    assert refresher._failures == 0
