"""Serving profiles in Redis: what the service saw, per retrieval version, in hourly and daily
windows (UTC), shared by every API process.

Keys, for window ``W`` (``h2026120403`` an hour, ``d20261204`` a day) of version ``V``:

* ``{prefix}:{V}:{W}:samples``: a list of JSON samples (the query row the service built, its
  query embedding, the top retrieval score, the tier), a uniform reservoir of at most
  ``max_samples`` of the samples offered in the window (Vitter's algorithm R, run atomically
  in Redis by a Lua script, so all processes feed one reservoir); ``...:offered`` counts them;
* ``{prefix}:{V}:{W}:counts``: a hash of answers by tier (``tier:full``), items shown by
  candidate source (``source:retrieval``), answers and cold starts, over every answer;
* ``{prefix}:{V}:{W}:items``: a HyperLogLog of the items shown (catalogue coverage).

Hour windows expire after ``HOUR_TTL_S``, day windows after ``DAY_TTL_S``.

Guarantees: ``add`` writes a batch in one round trip; a window's sample is uniform over the
samples offered in it whatever the number of writers; ``read_window`` returns what ``add``
wrote.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

PREFIX = "recsys:profile"
HOUR_TTL_S = 8 * 86_400
DAY_TTL_S = 35 * 86_400

# KEYS: samples list, offered counter; ARGV: capacity, sample, a uniform draw in [0, 1), ttl
RESERVOIR = """
local seen = redis.call('INCR', KEYS[2])
local capacity = tonumber(ARGV[1])
if seen <= capacity then
  redis.call('RPUSH', KEYS[1], ARGV[2])
else
  local slot = math.floor(tonumber(ARGV[3]) * seen)
  if slot < capacity then redis.call('LSET', KEYS[1], slot, ARGV[2]) end
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return seen
"""


def window_names(at_s: float) -> tuple[str, str]:
    """The hour and day windows of a Unix time (UTC)."""
    when = dt.datetime.fromtimestamp(at_s, dt.timezone.utc)
    return when.strftime("h%Y%m%d%H"), when.strftime("d%Y%m%d")


def _ttl(window: str) -> int:
    return HOUR_TTL_S if window.startswith("h") else DAY_TTL_S


def one_per_user(samples: list[dict]) -> list[dict]:
    """The first sample of each user (its ``unit``; samples without one are all kept). The
    tests assume independent draws, but a user's queries repeat the user's profile and, mostly,
    context: with a few sessions per user a day, a window of queries counts each user several
    times and the tests' p-values come out too small (false alarms, tests/test_drift_watch.py).
    Users are the independent units."""
    seen: set = set()
    out = []
    for sample in samples:
        unit = sample.get("unit")
        if unit is not None:
            if unit in seen:
                continue
            seen.add(unit)
        out.append(sample)
    return out


@dataclass
class Answer:
    """One answer as a window counts it; ``sample`` is set for sampled answers only."""

    at_s: float
    version: str
    tier: str
    item_ids: Sequence[str]
    sources: Sequence[str]
    cold_start: bool = False
    sample: Mapping[str, Any] | None = None


@dataclass
class Window:
    version: str
    name: str
    samples: list[dict] = field(default_factory=list)
    offered: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    distinct_items: int = 0


class ServingWindows:
    """Writes and reads the windows on a ``redis.Redis`` client."""

    def __init__(self, client, prefix: str = PREFIX, max_samples: int = 2_000,
                 rng: random.Random | None = None):
        self.client, self.prefix, self.max_samples = client, prefix, max_samples
        self._rng = rng or random.Random()
        self._script = client.register_script(RESERVOIR)

    def key(self, version: str, window: str, part: str) -> str:
        return f"{self.prefix}:{version}:{window}:{part}"

    def add(self, answers: Iterable[Answer], encode=json.dumps) -> int:
        """Count ``answers`` in their windows and offer their samples to the reservoirs, in
        one round trip; returns the answers written."""
        counts: dict[tuple[str, str], Counter] = {}
        items: dict[tuple[str, str], set] = {}
        pipe = self.client.pipeline(transaction=False)
        n = 0
        for answer in answers:
            n += 1
            payload = None if answer.sample is None else encode(
                {**answer.sample, "tier": answer.tier, "at_s": answer.at_s})
            for window in window_names(answer.at_s):
                where = (answer.version, window)
                tally = counts.setdefault(where, Counter())
                tally["answers"] += 1
                tally[f"tier:{answer.tier}"] += 1
                tally["cold_start"] += int(answer.cold_start)
                tally.update(f"source:{s}" for s in answer.sources)
                items.setdefault(where, set()).update(answer.item_ids)
                if payload is not None:
                    self._script(keys=[self.key(*where, "samples"),
                                       self.key(*where, "offered")],
                                 args=[self.max_samples, payload, self._rng.random(),
                                       _ttl(window)], client=pipe)
        for (version, window), tally in counts.items():
            key = self.key(version, window, "counts")
            for name, value in tally.items():
                if value:
                    pipe.hincrby(key, name, value)
            pipe.expire(key, _ttl(window))
            if items[(version, window)]:
                hll = self.key(version, window, "items")
                pipe.pfadd(hll, *items[(version, window)])
                pipe.expire(hll, _ttl(window))
        if n:
            pipe.execute()
        return n

    def read_window(self, version: str, window: str) -> Window:
        pipe = self.client.pipeline(transaction=False)
        pipe.lrange(self.key(version, window, "samples"), 0, -1)
        pipe.get(self.key(version, window, "offered"))
        pipe.hgetall(self.key(version, window, "counts"))
        pipe.pfcount(self.key(version, window, "items"))
        samples, offered, counts, distinct = pipe.execute()
        return Window(version, window, [json.loads(s) for s in samples], int(offered or 0),
                      {_text(k): int(v) for k, v in counts.items()}, int(distinct))

    def windows(self, version: str | None = None) -> list[tuple[str, str]]:
        """(version, window) pairs with counts in Redis, sorted."""
        pattern = f"{self.prefix}:{version or '*'}:*:counts"
        found = set()
        for key in self.client.scan_iter(match=pattern, count=1000):
            v, w, _ = _text(key)[len(self.prefix) + 1:].split(":")
            found.add((v, w))
        return sorted(found)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["one_per_user", "ServingWindows", "Answer", "Window", "window_names", "PREFIX"]
