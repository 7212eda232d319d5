"""The serving profile's writer: every answer counted in its hourly and daily windows (tier,
candidate sources, items shown), and the sampled answers' query rows, query embeddings and
top retrieval scores offered to the windows' reservoirs (``recsys.monitoring.
serving_windows``), in the stream's Redis.

Guarantees: ``observe`` never blocks and never raises (a full queue drops the answer,
counted); the conversion to JSON and the Redis round trip run in one background thread, a
batch per ``flush_s``; a Redis that is down loses those windows' data, logged, never a
request.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from typing import Any, Mapping

import numpy as np
import orjson

from recsys.monitoring.serving_windows import Answer, ServingWindows

log = logging.getLogger(__name__)
# identifiers: the reference profile keeps only lengths; a sample carries the user's "unit"
# (a short hash), so the drift tests count each user once per window
DROPPED_COLUMNS = ("user_id",)


class ServingProfile:
    def __init__(self, windows: ServingWindows | None, max_queued: int = 10_000,
                 flush_s: float = 1.0, batch: int = 2_000):
        self.windows, self.flush_s, self.batch = windows, flush_s, batch
        self._queue: queue.Queue = queue.Queue(max_queued)
        self._stop = threading.Event()
        self.written = self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="recsys-profile", daemon=True)
        if windows is not None:
            self._thread.start()

    def observe(self, result, at_s: float | None = None) -> None:
        """Queue one answer (a ``RecommendationResult``) for the windows of ``at_s`` (Unix
        seconds; None: now)."""
        if self.windows is None:
            return
        try:
            self._queue.put_nowait((time.time() if at_s is None else at_s, result))
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while not self._stop.is_set() or not self._queue.empty():
            self._stop.wait(self.flush_s)
            answers = []
            while len(answers) < self.batch:
                try:
                    answers.append(answer_of(*self._queue.get_nowait()))
                except queue.Empty:
                    break
            if not answers:
                continue
            try:
                self.written += self.windows.add(answers, encode=_encode)
            except Exception as exc:  # noqa: BLE001 - Redis down: logged, never raised
                self.dropped += len(answers)
                log.warning("%d answers left out of the serving profile: %s: %s",
                            len(answers), type(exc).__name__, exc)

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued (for at most ``timeout_s``), then stop."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)


def answer_of(at_s: float, result) -> Answer:
    """What the windows keep of one answer."""
    sample = None
    if result.probe is not None:
        row, query, top_score = result.probe
        sample = {"inputs": {k: v for k, v in row.items() if k not in DROPPED_COLUMNS},
                  "unit": user_unit(row.get("user_id")),
                  "embedding": None if query is None else np.asarray(query, np.float32)
                  .reshape(-1),
                  "top_score": top_score}
    return Answer(at_s, str(result.model_versions.get("retrieval", "none")), result.tier,
                  [c.item_id for c in result.items], [c.source for c in result.items],
                  bool(result.cold_start), sample)


def user_unit(user_id: str | None) -> str | None:
    """A short one-way hash of the user id: enough for the drift tests to count a user once
    per window, not an identifier to keep (None without a user)."""
    if not user_id:
        return None
    return hashlib.blake2b(user_id.encode(), digest_size=6).hexdigest()


def _encode(value: Mapping[str, Any]) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
                        default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


__all__ = ["ServingProfile", "answer_of", "user_unit"]
