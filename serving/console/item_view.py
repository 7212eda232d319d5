"""The item page's data: its online features, where it sits in the retrieval index, its
nearest items by embedding, its impressions, clicks and engagements over the last 24 hours
(the stream worker's 5-minute counters), and its place in the popular lists the service
falls back to."""

from __future__ import annotations

from recsys.features.item_counters import BUCKET_US, KINDS
from serving.console.context import ConsoleContext, plain

COUNTERS = KINDS
BUCKET_S = BUCKET_US // 1_000_000


class UnknownItem(KeyError):
    pass


def counter_series(client, stream: str, item_id: str) -> dict:
    """The item's 5-minute counters (``{stream}:item-counters:{item}``, written by the stream
    worker): bucket start times (Unix s, ascending) and a count per kind and bucket."""
    raw = client.hgetall(f"{stream}:item-counters:{item_id}") or {}
    counts: dict[int, dict[str, float]] = {}
    for field, value in raw.items():
        name = field.decode() if isinstance(field, bytes) else str(field)
        kind, _, bucket = name.partition(":")
        if kind in COUNTERS and bucket.isdigit():
            counts.setdefault(int(bucket), {})[kind] = float(value)
    starts = sorted(counts)
    return {"bucket_s": BUCKET_S, "t": [b * BUCKET_S for b in starts],
            **{kind: [counts[b].get(kind, 0.0) for b in starts] for kind in COUNTERS}}


def item_view(ctx: ConsoleContext, item_id: str, neighbours: int = 10) -> dict:
    """Raises UnknownItem for an item neither the index nor the online store knows."""
    recommender = ctx.recommender
    index = recommender.index
    try:
        columns, error = recommender.features.items([item_id]), None
        features = {name: values[0] for name, values in columns.items() if values}
    except Exception as exc:  # noqa: BLE001 - the store is down: the page says so
        features, error = {}, f"{type(exc).__name__}: {exc}"
    in_index = item_id in index.position
    if not in_index and not any(v is not None for k, v in features.items() if k != "item_id"):
        raise UnknownItem(item_id)
    nearest = []
    if in_index:
        vector = index.embedding_of(item_id)
        nearest = [{"item_id": other, "score": round(score, 6),
                    "category": index.category_of(other)}
                   for other, score in index.nearest(vector, neighbours, exclude={item_id})]
    popular = recommender.popular
    ranks = {"global": next((i for i, p in enumerate(popular.global_items)
                             if p.item_id == item_id), None)}
    for field, lists in popular.segments.items():
        for value, items in lists.items():
            rank = next((i for i, p in enumerate(items) if p.item_id == item_id), None)
            if rank is not None:
                ranks[f"{field}={value}"] = rank
    counters = None
    if ctx.stream is not None:
        try:
            counters = counter_series(ctx.stream.client, ctx.stream.cfg.stream, item_id)
        except Exception as exc:  # noqa: BLE001 - the stream's Redis is down
            counters = {"error": f"{type(exc).__name__}: {exc}"}
    return plain({"item_id": item_id, "in_index": in_index,
                  "index_version": index.version,
                  "category": index.category_of(item_id) if in_index else None,
                  "created_at_s": index.created_at_of(item_id) if in_index else None,
                  "features": features, "features_error": error, "nearest": nearest,
                  "popular_ranks": {k: v for k, v in ranks.items() if v is not None},
                  "counters": counters})


__all__ = ["item_view", "counter_series", "UnknownItem"]
