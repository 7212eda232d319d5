"""The overview page's data: the last hour's traffic, tiers, stage latencies, fallbacks,
refusals and ingestion (from :class:`~serving.console.history.MetricsHistory`), the event
stream's length, lag and freshness, and the circuit breakers now."""

from __future__ import annotations

import time

from serving.console.context import ConsoleContext, plain
from serving.console.stream_stats import stream_stats


def stream_reader(producer):
    """A callable giving the stream's figures now (for the history's readings), or None."""
    if producer is None:
        return None
    cfg = producer.cfg
    return lambda: stream_stats(producer.client, cfg.stream, cfg.group, cfg.dead_letter_stream)


def overview(ctx: ConsoleContext, since_s: float = 3600.0) -> dict:
    recommender = ctx.recommender
    reader = stream_reader(ctx.stream)
    try:
        stream = reader() if reader is not None else None
    except Exception as exc:  # noqa: BLE001 - the stream's Redis is down: say so
        stream = {"error": f"{type(exc).__name__}: {exc}"}
    return plain({
        "now": time.time(),
        "series": ctx.history.series(since_s),
        "interval_s": ctx.history.interval_s,
        "breakers": {name: b.snapshot() for name, b in recommender.breakers.items()},
        "stream": stream,
        "served": {"items": len(recommender.index),
                   "retrieval_version": recommender.index.version,
                   "serving_label": recommender.serving_label or "(newest)",
                   "labels": {label: pipeline.index.version
                              for label, pipeline in recommender.labelled.items()}}})


__all__ = ["overview", "stream_reader"]
