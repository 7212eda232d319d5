"""Following the model server to another version: when retrieval answers with a version other
than the service's item index (a new export loaded, or a rollback), the item index (catalogue
+ item tower embeddings) and the model specs are rebuilt for that version in one background
thread.

Guarantees: requests never wait for a rebuild and keep the old index until the new one is
complete; the index and specs are swapped in together; at most one rebuild runs at a time; a
failed rebuild (the item tower not at that version yet, say) is logged and tried again after
a delay that doubles from ``retry_s`` up to ``max_retry_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

log = logging.getLogger(__name__)


class VersionRefresher:
    def __init__(self, rebuild: Callable[[int], tuple[Any, Any]], retry_s: float = 10.0,
                 max_retry_s: float = 300.0, clock: Callable[[], float] = time.monotonic):
        """``rebuild(version)`` returns (item index, model specs) of retrieval ``version``."""
        self.rebuild, self.retry_s, self.max_retry_s = rebuild, retry_s, max_retry_s
        self.clock = clock
        self._lock = threading.Lock()
        self._running = False
        self._next_try = float("-inf")
        self._failures = 0
        self.refreshed = 0

    def saw(self, version: int, recommender) -> bool:
        """Retrieval answered with ``version``; start a rebuild if the index is of another
        one. Returns whether one was started."""
        if version == recommender.index.version:
            return False
        with self._lock:
            if self._running or version == recommender.index.version or \
                    self.clock() < self._next_try:
                return False
            self._running = True
        threading.Thread(target=self._run, args=(version, recommender), daemon=True,
                         name="recsys-version-refresh").start()
        return True

    def _run(self, version: int, recommender) -> None:
        try:
            index, specs = self.rebuild(version)
            recommender.swap_models(index, specs)
            self.refreshed += 1
            self._failures = 0
            log.info("serving version %d: item index rebuilt (%s items)", version,
                     f"{len(index):,}")
        except Exception as exc:  # noqa: BLE001 - logged, tried again later
            delay = min(self.max_retry_s, self.retry_s * 2 ** self._failures)
            self._failures += 1
            self._next_try = self.clock() + delay
            log.warning("could not follow retrieval version %d yet (%s: %s); trying again "
                        "in %.0f s", version, type(exc).__name__, exc, delay)
        finally:
            with self._lock:
                self._running = False


__all__ = ["VersionRefresher"]
