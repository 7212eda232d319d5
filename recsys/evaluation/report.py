"""The protocol's printed table and JSON document (../shared/EVALUATION.md, "Command")."""

from __future__ import annotations

from typing import Mapping, Sequence

PROTOCOL = "v1"


def metric_columns(ks: Sequence[int]) -> list[str]:
    """Recall@K for every K, then NDCG@10, MAP@10 and coverage@10 (when 10 is reported)."""
    first = 10 if 10 in ks else min(ks)
    return ([f"recall@{k}" for k in ks]
            + [f"ndcg@{k}" for k in ks if k == first] + [f"map@{first}", f"coverage@{first}"])


def format_table(models: Mapping[str, Mapping[str, float]], ks: Sequence[int]) -> str:
    """One row per model, four decimals, columns of :func:`metric_columns`."""
    columns = metric_columns(ks)
    width = max([len("model"), *map(len, models)]) + 2
    lines = [f"{'model':<{width}}" + "".join(f"{c:>13}" for c in columns)]
    for name, metrics in models.items():
        lines.append(f"{name:<{width}}" + "".join(f"{metrics[c]:>13.4f}" for c in columns))
    return "\n".join(lines)


def protocol_document(dataset: str, models: Mapping[str, Mapping], extra: Mapping) -> dict:
    """``{"protocol": "v1", "dataset": ..., "models": {name: {"recall@10": ...}}, ...}``."""
    return {"protocol": PROTOCOL, "dataset": dataset,
            "models": {name: dict(m) for name, m in models.items()}, **extra}


__all__ = ["PROTOCOL", "metric_columns", "format_table", "protocol_document"]
