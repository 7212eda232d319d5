"""The exposure log: every answer of ``/v1/recommendations`` becomes exposure records (one per
item: request id, time, user, context, arms, model versions, tier, position, score, source and
propensity), appended to the event stream (kind ``exposure``) for the stream worker to write
to the lake's ``exposures`` table or PostgreSQL, idempotent by ``request_id/position``.

Guarantees: a request never waits for the stream: ``log`` only queues the answer (bounded,
``max_queued`` answers) and a background thread builds the records and appends them in
batches, one round trip each (``StreamProducer.append_kinds``: the records are not checked
in the service, which cost a quarter of a core; the workers check them and dead-letter a bad
one with its reason). A batch lingers ``linger_s`` (50 ms) for the answers that follow its
first, so at low load its work (and an exploring answer's propensities) runs in bursts
rather than beside every request. Every answer is counted in ``recsys_exposures_total``:
``logged``, or ``dropped`` (the queue full, the stream's Redis down or never reached), never
lost silently. A deterministic answer shows each item with propensity 1.0; an exploring
one's exact propensities (``ExplorationDecision.slate``: Plackett-Luce's marginals are
computed here, in the background, not on the request path) go in its exposures, and what
its policy drew from in one ``decision`` record (the lake's ``decisions`` table), appended
before them.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from typing import Any, Mapping

log = logging.getLogger(__name__)
LOGGED, DROPPED = "logged", "dropped"


def exposure_records(request_id: str, shown_at: dt.datetime, result,
                     context: Mapping[str, str | None]) -> list[dict[str, Any]]:
    """The exposure records of one answer (a ``RecommendationResult``): an exploring
    answer's items carry their exact propensities, rank and policy; a deterministic
    answer's 1.0 and no policy."""
    arms = [f"{name}={arm}" for name, arm in sorted(result.experiments.items())]
    versions = result.model_versions
    common = {"request_id": request_id, "timestamp": shown_at.isoformat(),
              "user_id": result.user_id, "tier": result.tier, "experiments": arms,
              "holdout": int(result.holdout), "retrieval_version": versions.get("retrieval"),
              "ranker_version": versions.get("ranker"),
              **{name: context.get(name) for name in ("device", "country", "language")}}
    decision = result.exploration
    slate = decision.slate() if decision is not None else None
    policy = decision.spec.canonical() if decision is not None else None
    records = []
    for position, item in enumerate(result.items):
        explored = slate is not None and position < len(slate.order)
        records.append({
            **common, "exposure_id": f"{request_id}/{position}", "item_id": item.item_id,
            "position": position, "score": float(item.score), "source": item.source,
            "propensity": float(slate.propensity[position]) if explored else 1.0,
            "cascade_propensity": float(slate.cascade[position]) if explored else 1.0,
            "rank": int(slate.order[position]) if explored else position,
            "policy": policy, "team": item.team})
    return records


def decision_record(request_id: str, shown_at: dt.datetime, result) -> dict[str, Any] | None:
    """The ``decisions`` row of an exploring answer (None for a deterministic one)."""
    decision = result.exploration
    if decision is None:
        return None
    slate = decision.slate()
    ranked = decision.ranked
    return {"request_id": request_id, "timestamp": shown_at.isoformat(),
            "user_id": result.user_id, "policy": decision.spec.canonical(),
            "seed": decision.seed, "k": decision.k,
            "experiments": [f"{name}={arm}" for name, arm in sorted(result.experiments.items())],
            "list_item_ids": [c.item_id for c in ranked],
            "list_scores": [float(c.score) for c in ranked],
            "list_categories": [c.category or "" for c in ranked],
            "list_ages_s": decision.ages_s(), "list_sources": [c.source for c in ranked],
            "recent_categories": list(decision.recent_categories),
            "ranks": [int(r) for r in slate.order],
            "propensities": [float(p) for p in slate.propensity],
            "cascade_propensities": [float(p) for p in slate.cascade],
            "bandit_updates": None if decision.bandit is None else decision.bandit.updates}


class ExposureLog:
    """Queues answers and appends their exposure records to the stream in the background;
    ``producer`` None (the stream was unreachable at start): every answer is dropped,
    counted."""

    def __init__(self, producer, metrics, max_queued: int = 10_000, batch_answers: int = 200,
                 linger_s: float = 0.05):
        self.producer, self.metrics = producer, metrics
        self.batch_answers, self.linger_s = batch_answers, linger_s
        self._queue: queue.Queue = queue.Queue(max_queued)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recsys-exposures", daemon=True)
        if producer is not None:
            self._thread.start()

    def log(self, request_id: str, result, context: Mapping[str, str | None],
            at_s: float | None = None) -> None:
        """Queue one answer (never blocks), stamped ``at_s`` (Unix seconds; None: now)."""
        if self.producer is None:
            self._count(DROPPED, 1)
            return
        at = (dt.datetime.now(dt.timezone.utc) if at_s is None
              else dt.datetime.fromtimestamp(at_s, dt.timezone.utc))
        try:
            self._queue.put_nowait((request_id, at, result, dict(context)))
        except queue.Full:
            self._count(DROPPED, 1)

    def _run(self) -> None:
        while not self._stop.is_set() or not self._queue.empty():
            try:
                answers = [self._queue.get(timeout=0.2)]
            except queue.Empty:
                continue
            # linger (Kafka's linger.ms): the answers of the next moment join this batch, so
            # its work runs in one burst and one round trip, not between every two requests
            until = time.monotonic() + self.linger_s
            while len(answers) < self.batch_answers:
                wait = until - time.monotonic()
                try:
                    answers.append(self._queue.get(timeout=wait) if wait > 0
                                   else self._queue.get_nowait())
                except queue.Empty:
                    break
            self._append(answers)

    def _append(self, answers: list[tuple]) -> None:
        records, decisions = [], []
        for request_id, shown_at, result, context in answers:
            records.extend(exposure_records(request_id, shown_at, result, context))
            decision = decision_record(request_id, shown_at, result)
            if decision is not None:
                decisions.append(decision)
        try:
            # one round trip; decisions before the exposures: a worker meets the list first
            self.producer.append_kinds([("decision", decisions), ("exposure", records)])
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


__all__ = ["ExposureLog", "exposure_records", "decision_record", "LOGGED", "DROPPED"]
