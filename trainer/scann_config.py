"""Typed configuration of the ScaNN index the ``retrieval`` export is built with."""

from __future__ import annotations

import math
from dataclasses import dataclass

from recsys.errors import ConfigError


@dataclass(frozen=True)
class ScannConfig:
    """A ScaNN tree + asymmetric hashing index with exact re-scoring of the best candidates.

    Attributes:
        num_leaves: tree leaves (None: about sqrt(items), at most 2,000).
        num_leaves_to_search: leaves probed per query (None: a fifth of the leaves, at least 1).
        num_reordering_candidates: candidates re-scored exactly (None: max(20 * k, 500)).
        dimensions_per_block: asymmetric hashing block size (higher = smaller, less exact).
        training_iterations: k-means iterations for the tree.
        exact: probe every leaf and re-score every item: results equal brute force (for tests
            and small catalogues).
        min_recall: the export measures recall@10 against brute force on sample queries and
            doubles ``num_leaves_to_search`` and ``num_reordering_candidates`` until it reaches
            this (0 disables the widening).
    """

    num_leaves: int | None = None
    num_leaves_to_search: int | None = None
    num_reordering_candidates: int | None = None
    dimensions_per_block: int = 2
    training_iterations: int = 12
    exact: bool = False
    min_recall: float = 0.97

    def __post_init__(self) -> None:
        if not (isinstance(self.min_recall, (int, float)) and 0.0 <= self.min_recall <= 1.0):
            raise ConfigError(f"min_recall must be a number in [0, 1], got {self.min_recall!r}")
        for name in ("num_leaves", "num_leaves_to_search", "num_reordering_candidates"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ConfigError(f"{name} must be a positive integer or None, got {value!r}")
        for name in ("dimensions_per_block", "training_iterations"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if (self.num_leaves and self.num_leaves_to_search
                and self.num_leaves_to_search > self.num_leaves):
            raise ConfigError(f"num_leaves_to_search ({self.num_leaves_to_search}) cannot exceed "
                              f"num_leaves ({self.num_leaves})")

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
