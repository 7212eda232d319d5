"""Typed configuration of the ScaNN index the ``retrieval`` export is built with."""

from __future__ import annotations

import math
from dataclasses import dataclass

from recsys.config import Config, boolean, optional, positive_int, probability, setting
from recsys.errors import ConfigError


@dataclass(frozen=True)
class ScannConfig(Config):
    """A ScaNN tree + asymmetric hashing index with exact re-scoring of the best candidates.

    Attributes:
        num_leaves: tree leaves (None: about sqrt(items), at most 2,000).
        num_leaves_to_search: leaves probed per query (None: a fifth of the leaves, at least 1).
        num_reordering_candidates: candidates re-scored exactly (None: max(20 * k, 500)).
        dimensions_per_block: asymmetric hashing block size (higher = smaller, less exact).
        training_iterations: k-means iterations for the tree.
        exact: probe every leaf and re-score every item: results equal brute force (for tests
            and small catalogues).
        min_recall: the export measures recall@``recall_at`` against brute force on sample
            queries and widens the search (``num_reordering_candidates``, then
            ``num_leaves_to_search``) until it reaches this (0 disables the widening). Recall
            is counted by score: a result within 1e-5 of the exact k-th best score is a hit,
            so items tied with the exact ones (items sharing an embedding) do not force an
            exhaustive search.
        recall_at: the depth of that check (None: the index's k, the candidates a request
            retrieves and the ranker reorders: which of the exact top k reach the ranker is
            what the approximation changes downstream). Recall@10 is recorded beside it.
    """

    num_leaves: int | None = setting(None, optional(positive_int))
    num_leaves_to_search: int | None = setting(None, optional(positive_int))
    num_reordering_candidates: int | None = setting(None, optional(positive_int))
    dimensions_per_block: int = setting(2, positive_int)
    training_iterations: int = setting(12, positive_int)
    exact: bool = setting(False, boolean)
    min_recall: float = setting(0.97, probability)
    recall_at: int | None = setting(None, optional(positive_int))

    def check_together(self) -> None:
        if (self.num_leaves and self.num_leaves_to_search
                and self.num_leaves_to_search > self.num_leaves):
            raise ConfigError(f"num_leaves_to_search ({self.num_leaves_to_search}) cannot exceed "
                              f"num_leaves ({self.num_leaves})")

    def check_depth(self, k: int) -> int:
        """The depth recall is checked at for an index of ``k`` results (at most k: a
        catalogue smaller than ``recall_at`` is checked whole)."""
        return min(self.recall_at or k, k)

    def layer_arguments(self, items: int, k: int) -> dict:
        """Keyword arguments of ``tfrs.layers.factorized_top_k.ScaNN`` for ``items`` items."""
        if items < 16:
            raise ConfigError(f"a ScaNN index needs at least 16 items, got {items}; use the "
                              "portable (brute-force) export for tiny catalogues")
        leaves = min(self.num_leaves or max(1, min(2_000, round(math.sqrt(items)))), items)
        if self.exact:
            return {"k": k, "num_leaves": leaves, "num_leaves_to_search": leaves,
                    "num_reordering_candidates": items,
                    "dimensions_per_block": self.dimensions_per_block,
                    "training_iterations": self.training_iterations}
        search = min(self.num_leaves_to_search or max(1, leaves // 5), leaves)
        reorder = min(self.num_reordering_candidates or max(20 * k, 500), items)
        return {"k": k, "num_leaves": leaves, "num_leaves_to_search": search,
                "num_reordering_candidates": reorder,
                "dimensions_per_block": self.dimensions_per_block,
                "training_iterations": self.training_iterations}


__all__ = ["ScannConfig"]
