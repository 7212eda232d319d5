"""The exposure log: every answer of ``/v1/recommendations`` becomes exposure records (one per
item: request id, time, user, context, arms, model versions, tier, position, score, source and
propensity), appended to the event stream (kind ``exposure``) for the stream worker to write
to the lake's ``exposures`` table or PostgreSQL, idempotent by ``request_id/position``.

Guarantees: a request never waits for the stream: ``log`` only queues the answer (bounded,
``max_queued`` answers) and a background thread builds the records and appends them in
batches, one round trip each (``StreamProducer.append``: the records are not checked in the
service, which cost a quarter of a core; the workers check them and dead-letter a bad one
with its reason). Every answer is counted in ``recsys_exposures_total``: ``logged``, or
``dropped`` (the queue full, the stream's Redis down or never reached), never lost
silently. A
deterministic policy shows each item with propensity 1.0 (the exploration issue fills in
others).
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
from typing import Any, Mapping

log = logging.getLogger(__name__)
LOGGED, DROPPED = "logged", "dropped"


def exposure_records(request_id: str, shown_at: dt.datetime, result,
                     context: Mapping[str, str | None]) -> list[dict[str, Any]]:
    """The exposure records of one answer (a ``RecommendationResult``)."""
    arms = [f"{name}={arm}" for name, arm in sorted(result.experiments.items())]
    versions = result.model_versions
    common = {"request_id": request_id, "timestamp": shown_at.isoformat(),
              "user_id": result.user_id, "tier": result.tier, "experiments": arms,
              "holdout": int(result.holdout), "retrieval_version": versions.get("retrieval"),
              "ranker_version": versions.get("ranker"),
              **{name: context.get(name) for name in ("device", "country", "language")}}
    return [{**common, "exposure_id": f"{request_id}/{position}", "item_id": item.item_id,
             "position": position, "score": float(item.score), "source": item.source,
             "propensity": 1.0, "team": item.team}
            for position, item in enumerate(result.items)]


class ExposureLog:
    """Queues answers and appends their exposure records to the stream in the background;
    ``producer`` None (the stream was unreachable at start): every answer is dropped,
    counted."""

    def __init__(self, producer, metrics, max_queued: int = 10_000, batch_answers: int = 200):
        self.producer, self.metrics = producer, metrics
        self.batch_answers = batch_answers
        self._queue: queue.Queue = queue.Queue(max_queued)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recsys-exposures", daemon=True)
        if producer is not None:
            self._thread.start()

    def log(self, request_id: str, result, context: Mapping[str, str | None]) -> None:
        """Queue one answer (never blocks)."""
        if self.producer is None:
            self._count(DROPPED, 1)
            return
        try:
            self._queue.put_nowait((request_id, dt.datetime.now(dt.timezone.utc), result,
                                    dict(context)))
        except queue.Full:
            self._count(DROPPED, 1)

    def _run(self) -> None:
        while not self._stop.is_set() or not self._queue.empty():
            try:
                answers = [self._queue.get(timeout=0.2)]
            except queue.Empty:
                continue
            while len(answers) < self.batch_answers:
                try:
                    answers.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._append(answers)

    def _append(self, answers: list[tuple]) -> None:
        records = []
        for request_id, shown_at, result, context in answers:
            records.extend(exposure_records(request_id, shown_at, result, context))
        try:
            if records:
                self.producer.append("exposure", records)
        except Exception as exc:  # noqa: BLE001 - the stream is down: counted, not raised
            log.warning("%d answers' exposures dropped: the stream could not be written "
                        "(%s: %s)", len(answers), type(exc).__name__, exc)
            self._count(DROPPED, len(answers))
            return
        self._count(LOGGED, len(answers))

    def _count(self, outcome: str, n: int) -> None:
        if n:
            self.metrics.exposures.labels(outcome).inc(n)

    def close(self, timeout_s: float = 5.0) -> None:
        """Append what is queued (for at most ``timeout_s``), then stop."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)


__all__ = ["ExposureLog", "exposure_records", "LOGGED", "DROPPED"]
