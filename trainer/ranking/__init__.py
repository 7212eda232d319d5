"""The transformer ranker: candidates from the two-tower model, training lists with
retrieved and popularity negatives, the transformer ranker (history encoded once per user,
target attention per candidate), score fusion and its evaluation."""
