"""Vocabularies and statistics the towers are built with, computed from training data only.

Guarantees: every list is sorted by descending frequency, then by value, so the same data gives
the same vocabulary; ``""`` (missing) is never a vocabulary entry; numeric statistics ignore
missing values. A model directory stores these as JSON next to its checkpoints.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from recsys.errors import SourceError
from recsys.model_contract.feature_spec import InputSpec


def _ordered(counts: Counter) -> list[str]:
    counts.pop("", None)
    return [value for value, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def vocabulary(values: np.ndarray) -> list[str]:
    """Distinct non-empty strings of ``values`` (any shape), most frequent first."""
    return _ordered(value_counts(values))


def value_counts(values: np.ndarray, times: int = 1) -> Counter:
    """How often each string of ``values`` (any shape) occurs, each occurrence counted
    ``times`` times (a value that stands for that many rows)."""
    counts = Counter(np.asarray(values, dtype=object).ravel().tolist())
    return Counter({value: n * times for value, n in counts.items()}) if times != 1 else counts


def ordered_vocabulary(counts: Counter) -> list[str]:
    """The non-empty strings of ``counts``, most frequent first, then by value."""
    return _ordered(Counter(counts))


def log_stats(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of ``sign(x) * log1p(|x|)`` over the non-missing values."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return 0.0, 1.0
    t = np.sign(x) * np.log1p(np.abs(x))
    std = float(t.std())
    return float(t.mean()), std if std > 1e-6 else 1.0


@dataclass(frozen=True)
class Vocabularies:
    """Everything data-dependent the towers need.

    Attributes:
        user_ids, item_ids: ids seen in training (item ids also include the indexed catalogue's
            training items only: unseen items go through the out-of-vocabulary id).
        item_counts: training positives per entry of ``item_ids`` (for the logQ correction).
        categories, tags, languages: item content values.
        strings: vocabulary of every other string input (context and user features).
        numeric: (mean, std) of the log-scaled numeric inputs.
    """

    user_ids: list[str]
    item_ids: list[str]
    item_counts: list[int]
    categories: list[str]
    tags: list[str]
    languages: list[str]
    strings: dict[str, list[str]]
    numeric: dict[str, tuple[float, float]]

    @classmethod
    def build(cls, queries: Mapping[str, np.ndarray], candidates: Mapping[str, np.ndarray],
              query_specs: Iterable[InputSpec]) -> Vocabularies:
        """From the training examples' query and candidate arrays (one row per example)."""
        counts = Counter(candidates["item_id"].tolist())
        counts.pop("", None)
        item_ids = _ordered(Counter(counts))
        categories = Counter(candidates["item_category"].tolist())
        categories.update(queries["history_categories"].ravel().tolist())
        specs = [s for s in query_specs if s.name not in
                 {"user_id", "history_item_ids", "history_categories", "history_gaps_s",
                  "hour_of_day", "day_of_week"}]
        return cls(
            user_ids=vocabulary(queries["user_id"]),
            item_ids=item_ids,
            item_counts=[counts[i] for i in item_ids],
            categories=_ordered(categories),
            tags=vocabulary(candidates["item_tags"]),
            languages=vocabulary(candidates["item_language"]),
            strings={s.name: vocabulary(queries[s.name]) for s in specs if s.dtype == "string"},
            numeric={s.name: log_stats(queries[s.name]) for s in specs if s.dtype == "float32"},
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> Vocabularies:
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise SourceError(f"{path} not found: is this a model directory written by "
                              "`recsys train retrieval`?") from exc
        except json.JSONDecodeError as exc:
            raise SourceError(f"{path} is not valid JSON ({exc}); retrain the model or restore "
                              "its directory") from exc
        try:
            raw["numeric"] = {k: tuple(v) for k, v in raw["numeric"].items()}
            return cls(**raw)
        except (KeyError, TypeError, AttributeError) as exc:
            raise SourceError(f"{path} is not a vocabulary file of this version ({exc}); "
                              "retrain the model") from exc


__all__ = ["Vocabularies", "vocabulary", "log_stats"]
