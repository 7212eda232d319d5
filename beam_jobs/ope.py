"""Off-policy evaluation as Beam transforms: the estimators of ``recsys/exploration/ope.py``
over a PCollection of logged answers, on any runner.

``EstimatePolicyValue(target, k, clip, replicates, seed)`` turns a PCollection of
``LoggedAnswer`` into one result (the estimators with their bootstrap intervals, and the
answers skipped by reason), in three steps that each scale with the logs:

1. answers OPE cannot use are counted by reason (``SkippedCountsFn``) and left out;
2. the reward model's sufficient statistics per cross-fitting fold (``RewardModelStatsFn``),
   fitted into one model per fold and passed on as a side input;
3. each answer's statistics under the target policy, summed with the user-clustered Poisson
   bootstrap (``BootstrapSumsFn``): accumulators are sums, so they merge in any order and the
   result equals ``recsys.exploration.ope.evaluate`` in one process (test).
"""

from __future__ import annotations

from collections import Counter

import apache_beam as beam

from recsys.exploration.ope import (
    FOLDS,
    BootstrapSums,
    RewardModel,
    answer_statistics,
    fold_of,
    problem,
    reward_model_statistics,
)
from recsys.exploration.policies import Policy


class SkippedCountsFn(beam.CombineFn):
    """Counts of answers OPE skips, by reason."""

    def create_accumulator(self) -> Counter:
        return Counter()

    def add_input(self, counts: Counter, reason: str) -> Counter:
        counts[reason] += 1
        return counts

    def merge_accumulators(self, accumulators) -> Counter:
        total: Counter = Counter()
        for counts in accumulators:
            total.update(counts)
        return total

    def extract_output(self, counts: Counter) -> dict[str, int]:
        return dict(counts)


class RewardModelStatsFn(beam.CombineFn):
    """Per fold: ``(X^T X, X^T r)`` of the answers' shown slots, or None without features."""

    def __init__(self, k: int):
        self.k = k

    def create_accumulator(self):
        return [None] * FOLDS

    def add_input(self, stats, answer):
        if answer.features is None:
            return stats
        xtx, xtr = reward_model_statistics(answer, self.k)
        fold = fold_of(answer.user_id)
        stats[fold] = (xtx, xtr) if stats[fold] is None else (stats[fold][0] + xtx,
                                                              stats[fold][1] + xtr)
        return stats

    def merge_accumulators(self, accumulators):
        merged = [None] * FOLDS
        for stats in accumulators:
            for fold, s in enumerate(stats):
                if s is not None:
                    merged[fold] = s if merged[fold] is None else (merged[fold][0] + s[0],
                                                                   merged[fold][1] + s[1])
        return merged

    def extract_output(self, stats):
        present = [s for s in stats if s is not None]
        if not present:
            return None
        models = []
        for fold in range(FOLDS):
            others = [s for f, s in enumerate(stats) if f != fold and s is not None] or present
            models.append(RewardModel.fit(sum(s[0] for s in others),
                                          sum(s[1] for s in others), self.k))
        return models


class BootstrapSumsFn(beam.CombineFn):
    """``(user_id, statistics)`` pairs summed with the user-clustered Poisson bootstrap."""

    def __init__(self, k: int, replicates: int, seed: int):
        self.k, self.replicates, self.seed = k, replicates, seed

    def create_accumulator(self) -> BootstrapSums:
        return BootstrapSums(self.k, self.replicates, self.seed)

    def add_input(self, sums: BootstrapSums, pair) -> BootstrapSums:
        sums.add(*pair)
        return sums

    def merge_accumulators(self, accumulators) -> BootstrapSums:
        accumulators = iter(accumulators)
        merged = next(accumulators)
        for sums in accumulators:
            merged.merge(sums)
        return merged

    def extract_output(self, sums: BootstrapSums) -> dict:
        return sums.result()


class _Statistics(beam.DoFn):
    def __init__(self, target: Policy, k: int, clip: float | None):
        self.target, self.k, self.clip = target, k, clip

    def process(self, answer, models):
        model = None if models is None else models[fold_of(answer.user_id)]
        yield answer.user_id, answer_statistics(answer, self.target, self.k, self.clip, model)


class EstimatePolicyValue(beam.PTransform):
    """LoggedAnswers -> one dict: ``{"estimates": {estimator: {estimate, low, high, se}},
    "skipped": {reason: count}}``."""

    def __init__(self, target: Policy, k: int, clip: float | None = None,
                 replicates: int = 500, seed: int = 0):
        super().__init__()
        self.target, self.k, self.clip = target, k, clip
        self.replicates, self.seed = replicates, seed

    def expand(self, answers):
        checked = answers | "Check" >> beam.Map(lambda a: (a, problem(a)))
        usable = (checked | "Usable" >> beam.Filter(lambda pair: pair[1] is None)
                  | "Answer" >> beam.Map(lambda pair: pair[0]))
        skipped = (checked | "Unusable" >> beam.Filter(lambda pair: pair[1] is not None)
                   | "Reason" >> beam.Map(lambda pair: pair[1])
                   | "CountSkipped" >> beam.CombineGlobally(SkippedCountsFn()))
        models = usable | "RewardModel" >> beam.CombineGlobally(RewardModelStatsFn(self.k))
        estimates = (usable
                     | "Statistics" >> beam.ParDo(_Statistics(self.target, self.k, self.clip),
                                                  models=beam.pvalue.AsSingleton(models))
                     | "Bootstrap" >> beam.CombineGlobally(
                         BootstrapSumsFn(self.k, self.replicates, self.seed)))
        return (estimates
                | "WithSkipped" >> beam.Map(
                    lambda result, skipped: {"estimates": result, "skipped": skipped},
                    skipped=beam.pvalue.AsSingleton(skipped)))


__all__ = ["EstimatePolicyValue", "BootstrapSumsFn", "RewardModelStatsFn", "SkippedCountsFn"]
