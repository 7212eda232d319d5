"""The user page's data: the user's online features and recent history, the recommendations
the service gives them now (each item's source, score, reasons, position and propensity), the
request's per-stage trace and experiment arms, and another model version's list beside it."""

from __future__ import annotations

import datetime as dt
import time

from serving.console.context import ConsoleContext, plain
from serving.recommendations.exposure_log import exposure_records
from serving.recommendations.pipeline import RecommendationRequest
from serving.recommendations.queries import user_history


def answer_document(result) -> dict:
    """One answer as the user page shows it: its items with position and propensity (the
    exposure log's records), tier, versions, trace and arms."""
    shown = exposure_records("console", dt.datetime.now(dt.timezone.utc), result, {})
    items = [{"position": record["position"], "item_id": c.item_id, "category": c.category,
              "source": c.source, "score": round(float(c.score), 6), "reasons": c.reasons,
              "propensity": record["propensity"], "rank": record["rank"],
              "team": c.team} for c, record in zip(result.items, shown)]
    return {"items": items, "tier": result.tier, "segment": result.segment,
            "cold_start": result.cold_start, "model_versions": result.model_versions,
            "model_label": result.model_label or "(default)", "trace_ms": result.latency_ms,
            "degraded": result.degraded, "experiments": result.experiments,
            "holdout": result.holdout,
            "exploration": None if result.exploration is None
            else result.exploration.document()}


def user_view(ctx: ConsoleContext, user_id: str, k: int = 10, compare: str = "",
              context: dict | None = None) -> dict:
    """Raises KeyError for a ``compare`` label that is not loaded."""
    recommender = ctx.recommender
    now_s = int(time.time())
    try:
        features, error = recommender.features.user(user_id), None
    except Exception as exc:  # noqa: BLE001 - the store is down: the page says so
        features, error = None, f"{type(exc).__name__}: {exc}"
    history = user_history(features or {}, now_s, recommender.cfg.max_history)
    request = RecommendationRequest(user_id=user_id, k=k, context=dict(context or {}),
                                    now_s=now_s)
    known = any(value is not None for value in (features or {}).values())
    out = {"user_id": user_id, "known": known, "features": features,
           "features_error": error,
           "history": [{"item_id": item, "category": category, "age_s": gap}
                       for item, category, gap in zip(history.item_ids, history.categories,
                                                      history.gaps_s)],
           "answer": answer_document(recommender.preview(request)),
           "labels": sorted(recommender.labelled), "compare": None}
    if compare:
        out["compare"] = {"label": compare,
                          "answer": answer_document(recommender.preview(request, compare))}
    return plain(out)


__all__ = ["user_view", "answer_document"]
