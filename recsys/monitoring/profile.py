"""Reference profiles: what a model version was trained on, kept beside its manifest so that
what the service later sees can be compared with it.

A profile holds, per input column of the training examples, a seeded uniform sample of its
values (at most ``SAMPLE_SIZE``), how many rows it had and how many were missing; a column of
lists is profiled as two: ``NAME#length`` (numbers) and ``NAME#values`` (its elements, pooled).
It may also hold samples of the version's query embeddings and of its top scores on those
rows. Written as ``assets.extra/profile.json`` (TF Serving copies ``assets.extra`` with the
version and ignores it).

Guarantees: the same frame, sample size and seed give the same profile; every sampled value
is one of the column's own (no binning: any drift test can run on it); ``drift_report``
tests every column the profile and the window share, with ``recsys.monitoring.drift``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recsys.errors import ConfigError
from recsys.monitoring.drift import DriftResult, DriftTestChoice, feature_drift, is_missing

PROFILE = Path("assets.extra") / "profile.json"
SAMPLE_SIZE = 2_000
EMBEDDING_SAMPLE = 300
LENGTH, VALUES = "#length", "#values"


def _plain(value: Any) -> Any:
    """A JSON-friendly scalar (numpy scalars and bytes made plain)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def column_samples(name: str, values: Sequence[Any]) -> dict[str, list[Any]]:
    """The columns a profile keeps for one input column: itself, or for lists its lengths and
    elements."""
    values = [_plain(v) if not isinstance(v, (list, tuple, np.ndarray)) else v for v in values]
    if any(isinstance(v, (list, tuple, np.ndarray)) for v in values):
        lists = [[] if is_missing(v) else list(v) for v in values]
        return {name + LENGTH: [len(v) for v in lists],
                name + VALUES: [_plain(x) for v in lists for x in v]}
    return {name: values}


def _sampled(values: Sequence[Any], size: int, rng: np.random.Generator) -> list[Any]:
    if len(values) <= size:
        return list(values)
    return [values[i] for i in np.sort(rng.choice(len(values), size, replace=False))]


def build_profile(columns: Mapping[str, Sequence[Any]], sample_size: int = SAMPLE_SIZE,
                  seed: int = 0, embeddings: np.ndarray | None = None,
                  scores: np.ndarray | None = None,
                  identifiers: Collection[str] = ()) -> dict[str, Any]:
    """The profile of ``columns`` (name -> values per row), with optional ``(rows, d)`` query
    embeddings and per-row top ``scores``. ``identifiers`` name columns of ids (users,
    items): two samples of ids differ whatever the population does, so only a list's length
    is kept of them."""
    rng = np.random.default_rng(seed)
    profile: dict[str, Any] = {"sample_size": sample_size, "seed": seed, "columns": {}}
    for name in sorted(columns):
        for column, values in column_samples(name, columns[name]).items():
            if name in identifiers and column != name + LENGTH:
                continue
            present = [v for v in values if not is_missing(v)]
            profile["columns"][column] = {"rows": len(values),
                                          "missing": len(values) - len(present),
                                          "sample": _sampled(present, sample_size, rng)}
    if embeddings is not None:
        embeddings = np.asarray(embeddings, dtype=np.float64)
        rows = _sampled(list(range(len(embeddings))), EMBEDDING_SAMPLE, rng)
        profile["query_embeddings"] = embeddings[rows].round(6).tolist()
    if scores is not None:
        profile["scores"] = _sampled(np.asarray(scores, float).round(6).tolist(), sample_size,
                                     rng)
    return profile


def write_profile(saved_model: Path, profile: Mapping[str, Any]) -> Path:
    path = Path(saved_model) / PROFILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(profile, separators=(",", ":")))
    return path


def read_profile(saved_model: Path) -> dict[str, Any] | None:
    """A version's profile (None: it was exported without one); a file that is not a
    profile is a ``ConfigError`` naming it."""
    path = Path(saved_model) / PROFILE
    if not path.exists():
        return None
    try:
        profile = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not a reference profile (not JSON: {exc})") from None
    if not isinstance(profile, dict) or not isinstance(profile.get("columns"), dict):
        raise ConfigError(f"{path} is not a reference profile (no columns mapping)")
    return profile


def drift_report(profile: Mapping[str, Any], window: Mapping[str, Sequence[Any]],
                 choices: Mapping[str, DriftTestChoice] | None = None
                 ) -> list[DriftResult]:
    """One result per column both hold (``window`` as ``column_samples`` would profile it:
    pass raw input columns, lists included); columns with fewer than two values on a side
    are left out. A window's ``top_score`` column is tested against the profile's top scores,
    and its ``embedding`` column (query embeddings, as the serving profile samples them)
    against the profile's by MMD (``query_embedding``, test ``mmd``, a p-value)."""
    seen: dict[str, list[Any]] = {}
    special = {"top_score", "embedding"}
    for name, values in window.items():
        if name not in special:
            seen.update(column_samples(name, values))
    out = []
    for column, reference in sorted(profile["columns"].items()):
        values = seen.get(column)
        if values is None or len(reference["sample"]) < 2 or sum(
                not is_missing(v) for v in values) < 2:
            continue
        out.append(feature_drift(column, reference["sample"], values,
                                 (choices or {}).get(column)))
    scores = [v for v in window.get("top_score", ()) if not is_missing(v)]
    if len(profile.get("scores") or ()) >= 2 and len(scores) >= 2:
        out.append(feature_drift("top_score", profile["scores"], scores,
                                 (choices or {}).get("top_score")))
    out.extend(_embedding_result(profile, window.get("embedding")))
    return out


def _embedding_result(profile: Mapping[str, Any], embeddings) -> list[DriftResult]:
    from recsys.monitoring.embedding_drift import embedding_drift

    reference = profile.get("query_embeddings") or []
    current = [e for e in (embeddings or ()) if e is not None and len(e)]
    if len(reference) < 2 or len(current) < 2 or len(current[0]) != len(reference[0]):
        return []
    found = embedding_drift(np.asarray(reference), np.asarray(current, dtype=float))
    return [DriftResult("query_embedding", "embedding", "mmd", found.p_value, found.alpha,
                        found.drift, found.reference_size, found.current_size,
                        1 - len(current) / max(len(embeddings), 1))]


__all__ = ["PROFILE", "build_profile", "write_profile", "read_profile", "drift_report",
           "column_samples", "SAMPLE_SIZE"]
