"""Per-key rate limits: a token bucket per key.

Guarantees: over any interval of length T a key is admitted at most ``burst + rate * T``
times; a refused request is told how many whole seconds to wait (``Retry-After``) before one
token is back. Buckets are per process and the service's processes share a key's rate
(:meth:`RateLimiter.for_processes`), so N processes admit the configured rate in all when the
kernel spreads connections evenly over them. Not thread-safe: one event loop calls it.
"""

from __future__ import annotations

import math
import time
from typing import Callable


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` held; starts full."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float):
        self.rate, self.burst = rate, max(burst, 1.0)
        self.tokens, self.stamp = self.burst, now

    def take(self, now: float) -> float:
        """0.0 if a token was taken, else the seconds until one is back."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """Buckets by name, created on first use with that name's rate and burst."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, share: float = 1.0):
        self.clock, self.share = clock, share
        self._buckets: dict[str, TokenBucket] = {}

    @classmethod
    def for_processes(cls, processes: int, clock: Callable[[], float] = time.monotonic
                      ) -> "RateLimiter":
        """A limiter of one of ``processes`` service processes: each admits its share."""
        return cls(clock, 1.0 / max(processes, 1))

    def retry_after(self, name: str, rate: float, burst: float) -> int:
        """0 if ``name`` may go on now (a token taken), else whole seconds to wait (>= 1);
        ``rate`` 0 is unlimited."""
        if rate <= 0:
            return 0
        bucket = self._buckets.get(name)
        now = self.clock()
        if bucket is None:
            bucket = self._buckets[name] = TokenBucket(rate * self.share, burst * self.share,
                                                       now)
        wait = bucket.take(now)
        return 0 if wait == 0.0 else max(1, math.ceil(wait))


__all__ = ["TokenBucket", "RateLimiter"]
