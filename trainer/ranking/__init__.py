"""The transformer ranker: candidates from the two-tower model, training lists with
retrieved and popularity negatives, the BST ranker, score fusion and its evaluation."""
