"""Reference models the quality benchmark runs in the same harness as the project's own:
EASE (:mod:`trainer.baselines.ease`) and an ids-only SASRec
(:mod:`trainer.baselines.sasrec`)."""
