"""A small thread-safe cache whose entries expire a fixed time after they were put.

Guarantees:

* An entry is returned for ``ttl_s`` seconds after its latest ``put`` (on the injected
  monotonic ``clock``), never at or after that; expired entries count as misses and are dropped
  when met. ``len()`` counts live entries only.
* Past ``max_entries`` the least recently used entry (by ``get`` hit or ``put``) is evicted;
  ``evictions`` counts only those, not expiries. ``clear()`` keeps the counters.
* ``None`` is never a value: ``get`` returns it for a miss, so ``put(key, None)`` is a
  ``ValueError`` and a loader's ``None`` is returned uncached.
* ``get_or_load`` calls the loader outside the lock: concurrent misses on one key may each load
  (the last one is kept); a loader's exception propagates and nothing is cached.
* ``ttl_s`` or ``max_entries`` out of range is a ``ConfigError`` naming the field.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from recsys.config import finite_positive_number, positive_int
from recsys.errors import ConfigError

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """LRU cache with a time-to-live per entry; see the module docstring."""

    def __init__(self, max_entries: int, ttl_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        positive_int("max_entries", max_entries)
        finite_positive_number("ttl_s", ttl_s)
        if not callable(clock):
            raise ConfigError(f"clock must be callable, got {clock!r}")
        self.max_entries = max_entries
        self.ttl_s = float(ttl_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()  # value, expires at
        self._hits = self._misses = self._evictions = 0

    def get(self, key: K) -> V | None:
        """The live value for ``key`` (now the most recently used), or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and self._clock() >= entry[1]:
                del self._entries[key]
                entry = None
            if entry is None:
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return entry[0]

    def put(self, key: K, value: V) -> None:
        """Store ``value`` for ``ttl_s`` seconds, evicting the least recently used if full."""
        if value is None:
            raise ValueError(f"TTLCache cannot store None (it means a miss), key {key!r}")
        with self._lock:
            self._entries[key] = (value, self._clock() + self.ttl_s)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
                self._evictions += 1

    def get_or_load(self, key: K, loader: Callable[[], V]) -> V:
        """The cached value, or ``loader()``'s result, cached unless it is None."""
        value = self.get(key)
        if value is None:
            value = loader()
            if value is not None:
                self.put(key, value)
        return value

    def invalidate(self, key: K) -> bool:
        """Forget ``key``; True if it was stored (even if expired)."""
        with self._lock:
            return self._entries.pop(key, None) is not None

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _live_count(self) -> int:  # the caller holds self._lock
        now = self._clock()
        for key in [k for k, (_, expires) in self._entries.items() if now >= expires]:
            del self._entries[key]
        return len(self._entries)

    def __len__(self) -> int:
        with self._lock:
            return self._live_count()

    @property
    def hits(self) -> int:
        return self._hits

    @property
    def misses(self) -> int:
        return self._misses

    @property
    def evictions(self) -> int:
        return self._evictions

    def stats(self) -> dict[str, Any]:
        """entries, max_entries, ttl_s, hits, misses, evictions: one consistent snapshot."""
        with self._lock:
            return {"entries": self._live_count(), "max_entries": self.max_entries,
                    "ttl_s": self.ttl_s, "hits": self._hits, "misses": self._misses,
                    "evictions": self._evictions}


__all__ = ["TTLCache"]
