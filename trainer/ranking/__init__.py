"""The transformer ranking model (issue 6): candidates from the two-tower model, training
samples with retrieved and popularity negatives, the BST ranker and its evaluation."""
