"""Training rows for the ranker: every positive example with its negatives.

For each positive (user, item, time) the ranker sees, as in its serving situation, items the
two-tower model retrieved for that user at that time but that the user did not take
(``retrieved`` negatives), plus items drawn by popularity (``popular`` negatives, probability
proportional to count ** 0.75, as word2vec samples), so it learns both to order retrieved
candidates and to push generally popular items below personal ones.

Guarantees: negatives are never the positive item nor an item in the example's history; the
same seed gives the same rows; rows keep the example's columns, with ``item_id`` replaced
for negatives, and ``label`` (1 / 0) and ``negative_source`` added.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.errors import ConfigError


@dataclass(frozen=True)
class NegativeSampling:
    retrieved: int = 4
    popular: int = 4
    seed: int = 42

    def __post_init__(self) -> None:
        for name in ("retrieved", "popular"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} negatives must be an integer >= 0, got {value!r}")
        if self.retrieved + self.popular == 0:
            raise ConfigError("at least one negative per positive is needed")


def _forbidden(example_item: str, history) -> set[str]:
    seen = set(history) if history is not None else set()
    seen.add(example_item)
    return seen


def sample_rows(examples: pd.DataFrame, retrieved_ids: np.ndarray, item_ids: np.ndarray,
                item_counts: np.ndarray, sampling: NegativeSampling = NegativeSampling()
                ) -> pd.DataFrame:
    """``examples`` (positives, one per row) with their negatives.

    Args:
        examples: rows with at least ``item_id`` and ``history_item_ids``.
        retrieved_ids: [len(examples), R] item ids the two-tower model retrieved per example
            (best first; "" = padding).
        item_ids, item_counts: the catalogue to draw popular negatives from and their counts.
    """
    if len(retrieved_ids) != len(examples):
        raise ValueError(f"{len(retrieved_ids)} retrieved lists for {len(examples)} examples")
    rng = np.random.default_rng(sampling.seed)
    weights = np.asarray(item_counts, dtype=np.float64) ** 0.75
    weights /= weights.sum()
    draws = rng.choice(len(item_ids), size=(len(examples), 4 * sampling.popular + 8),
                       p=weights)
    chosen_rows, chosen_items, sources = [], [], []
    positives = examples["item_id"].to_numpy()
    histories = examples["history_item_ids"].to_numpy()
    for row in range(len(examples)):
        forbidden = _forbidden(positives[row], histories[row])
        taken = 0
        for item in retrieved_ids[row]:
            if taken == sampling.retrieved:
                break
            if item and item not in forbidden:
                forbidden.add(item)
                chosen_rows.append(row)
                chosen_items.append(item)
                sources.append("retrieved")
                taken += 1
        taken = 0
        for index in draws[row]:
            if taken == sampling.popular:
                break
            item = item_ids[index]
            if item not in forbidden:
                forbidden.add(item)
                chosen_rows.append(row)
                chosen_items.append(item)
                sources.append("popular")
                taken += 1
    positive = examples.assign(label=1.0, negative_source="")
    negative = examples.iloc[chosen_rows].assign(item_id=chosen_items, label=0.0,
                                                 negative_source=sources)
    rows = pd.concat([positive, negative], ignore_index=True)
    order = np.concatenate([np.arange(len(examples)), np.asarray(chosen_rows, dtype=np.int64)])
    rows["example_index"] = order
    return rows.sort_values(["example_index", "label"], ascending=[True, False],
                            kind="stable").reset_index(drop=True)


__all__ = ["NegativeSampling", "sample_rows"]
