"""Following the model server to a new version: when retrieval answers with a version newer
than the service's item index, the item index (catalogue + item tower embeddings) and the
model specs are rebuilt from the new version's manifests in one background thread.

Guarantees: requests never wait for a rebuild and keep the old index until the new one is
complete; the index and specs are swapped in together; at most one rebuild runs at a time; a
failed rebuild (the new item tower not loaded yet, say) is logged and tried again after
``retry_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

log = logging.getLogger(__name__)


class VersionRefresher:
    def __init__(self, rebuild: Callable[[], tuple[Any, Any]], retry_s: float = 10.0):
        """``rebuild()`` returns (item index, model specs) of the newest exported version."""
        self.rebuild, self.retry_s = rebuild, retry_s
        self._lock = threading.Lock()
        self._running = False
        self._failed_at = float("-inf")
        self.refreshed = 0

    def saw(self, version: int, recommender) -> bool:
        """Retrieval answered with ``version``; start a rebuild if it is newer than the
        index. Returns whether one was started."""
        if version <= recommender.index.version:
            return False
        with self._lock:
            if self._running or time.monotonic() - self._failed_at < self.retry_s:
                return False
            self._running = True
        threading.Thread(target=self._run, args=(version, recommender), daemon=True,
                         name="recsys-version-refresh").start()
        return True

    def _run(self, version: int, recommender) -> None:
        try:
            index, specs = self.rebuild()
            recommender.swap_models(index, specs)
            self.refreshed += 1
            log.info("serving version %d: item index rebuilt (%s items, item_tower v%d)",
                     version, f"{len(index):,}", index.version)
        except Exception as exc:  # noqa: BLE001 - logged, tried again later
            self._failed_at = time.monotonic()
            log.warning("could not follow retrieval version %d yet (%s: %s); trying again "
                        "in %.0f s", version, type(exc).__name__, exc, self.retry_s)
        finally:
            with self._lock:
                self._running = False


__all__ = ["VersionRefresher"]
