"""Off-policy evaluation as Beam transforms: the estimators of ``recsys/exploration/ope.py``
over a PCollection of logged answers, on any runner; and the job that reads them from a lake.

    python -m beam_jobs.ope --lake LAKE --output OUT.json --policy SPEC [--slots 20]
        [--clip W] [--replicates 500] [--seed 0] [--attribution_window_s 1800]
        [--start TIME] [--end TIME] [--reward click=1,like=0.5,skip=-0.5] [--runner ...]

A logged answer is a row of the lake's ``decisions`` (what an exploring policy drew from and
drew, with its propensities) and the rewards of its slots: the events naming its
``request_id`` and ``position`` within the attribution window after it (``--reward``
weights, ``recsys.exploration.rewards``). Answers served by a deterministic policy have no
decision: they are counted (``deterministic answers``) and cannot be used, since such logs
give no support to any other choice.

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

import json
import logging
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Sequence

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs.lake_io import OnePerKey, ReadParquetRows, read_events
from beam_jobs.options import AnswerWindowOptions, lake_and_output, time_option
from recsys.errors import ConfigError
from recsys.exploration.features import bandit_features
from recsys.exploration.linucb import LinUCBState
from recsys.exploration.ope import (
    FOLDS,
    BootstrapSums,
    LoggedAnswer,
    add_fold_statistics,
    answer_statistics,
    fold_of,
    merge_fold_statistics,
    models_from_folds,
    problem,
)
from recsys.exploration.policies import Policy
from recsys.exploration.rewards import RewardConfig
from recsys.exploration.spec import LINUCB, parse_policy

log = logging.getLogger(__name__)
DETERMINISTIC = "deterministic answers (no decision logged: no support for other policies)"


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
        return add_fold_statistics(stats, answer, self.k)

    def merge_accumulators(self, accumulators):
        return merge_fold_statistics(accumulators)

    def extract_output(self, stats):
        return models_from_folds(stats, self.k)


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


class OPEJobOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--policy", help="the policy to evaluate (a spec: NAME or "
                                             "NAME:key=value,...)")
        parser.add_argument("--slots", type=int, default=20,
                            help="slots counted per answer (the first of longer answers)")
        parser.add_argument("--clip", type=float, default=None,
                            help="cut importance weights above this (default: none)")
        parser.add_argument("--replicates", type=int, default=500,
                            help="bootstrap replicates")
        parser.add_argument("--seed", type=int, default=0, help="the bootstrap's seed")
        parser.add_argument("--bandit_state", help="a linucb policy's parameters: a file "
                                                   "written by LinUCBState.to_bytes (e.g. "
                                                   "the live bandit's, saved)")
        parser.add_argument("--reward", default="click=1",
                            help="reward weights by event type: click=1,like=0.5,"
                                 "skip=-0.5,watch_s=0.001 (the rest 0)")


def reward_config(text: str) -> RewardConfig:
    """``click=1,like=0.5`` as a RewardConfig; ConfigError naming a bad part."""
    values = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise ConfigError(f"--reward: {part!r} is not type=weight")
        try:
            values[key.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--reward {key.strip()} must be a number, got {value!r}") \
                from None
    return RewardConfig.from_dict(values, "--reward")


class _Answer(beam.DoFn):
    """A decision and the events naming it -> one LoggedAnswer (rewards within the
    window)."""

    def __init__(self, window_s: float):
        self.window_us = window_s * 1e6

    def process(self, keyed):
        _, grouped = keyed
        decisions = list(grouped["decisions"])
        if not decisions:
            return
        d = decisions[0]
        ranks = np.asarray(d["ranks"], dtype=np.int64)
        rewards = np.zeros(len(ranks))
        for position, ts_us, reward in grouped["rewards"]:
            if 0 <= position < len(ranks) and 0 <= ts_us - d["timestamp"] <= self.window_us:
                rewards[position] += reward
        features = bandit_features(d["list_scores"], d["list_categories"] or [],
                                   d["list_ages_s"] or [], d["list_sources"] or [],
                                   set(d["recent_categories"] or ()))
        yield LoggedAnswer(d["request_id"], d["user_id"],
                           np.asarray(d["list_scores"], dtype=np.float64), ranks,
                           np.asarray(d["propensities"], dtype=np.float64),
                           np.asarray(d["cascade_propensities"], dtype=np.float64), rewards,
                           features)


def logged_answers(p: beam.Pipeline, lake: Path, window_s: float, rewards: RewardConfig,
                   start_us: int | None = None, end_us: int | None = None):
    """(LoggedAnswers of the lake's decisions in [start, end), the count of deterministic
    answers in that time)."""
    def in_time(row: dict) -> bool:
        ts = row.get("timestamp")
        return ts is not None and (start_us is None or ts >= start_us) and (
            end_us is None or ts < end_us)

    decisions = (p | "ReadDecisions" >> ReadParquetRows(
                     str(lake / "decisions" / "*" / "part-*.parquet"))
                 | "DecisionsInTime" >> beam.Filter(in_time)
                 | "OnePerDecision" >> OnePerKey("request_id"))
    scored = (read_events(p, lake).records
              | "Rewarded" >> beam.Filter(lambda e: e.request_id and e.position is not None)
              | "Reward" >> beam.Map(lambda e: (e.request_id, (
                  int(e.position), e.ts_us, rewards.of(e._asdict()))))
              | "NonZero" >> beam.Filter(lambda pair: pair[1][2] != 0))
    answers = ({"decisions": decisions | "ByRequest" >> beam.Map(
                    lambda d: (d["request_id"], d)),
                "rewards": scored}
               | "Join" >> beam.CoGroupByKey()
               | "Answers" >> beam.ParDo(_Answer(window_s)))
    deterministic = (p | "ReadExposures" >> ReadParquetRows(
                         str(lake / "exposures" / "*" / "part-*.parquet"))
                     | "ExposuresInTime" >> beam.Filter(in_time)
                     | "Deterministic" >> beam.Filter(lambda r: not r.get("policy"))
                     | "Requests" >> beam.Map(lambda r: r["request_id"])
                     | "Distinct" >> beam.Distinct()
                     | "Count" >> beam.combiners.Count.Globally())
    return answers, deterministic


def run(argv: Sequence[str] | None = None) -> dict:
    """The OPE job with Beam command-line options; writes ``--output`` (JSON) and returns
    what it wrote."""
    options = PipelineOptions(argv)
    opts = options.view_as(OPEJobOptions)
    window = options.view_as(AnswerWindowOptions)
    lake, output = lake_and_output(options)
    if not opts.policy:
        raise ConfigError("--policy is required (e.g. softmax:temperature=0.1)")
    spec = parse_policy(opts.policy, "--policy")
    if spec.other_categories:
        raise ConfigError("--policy other_categories: a target that draws items from outside "
                          "the logged list cannot be evaluated on it (its draws are not in "
                          "the logs); evaluate the policy without it")
    bandit = None
    if spec.policy == LINUCB:
        if not opts.bandit_state:
            raise ConfigError("--policy linucb needs --bandit_state FILE: OPE evaluates a "
                              "fixed policy, the bandit with those parameters")
        try:
            bandit = LinUCBState.from_bytes(Path(opts.bandit_state).read_bytes()).snapshot()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--bandit_state {opts.bandit_state}: {exc}") from None
    for name, low in (("slots", 1), ("replicates", 1)):
        if getattr(opts, name) < low:
            raise ConfigError(f"--{name} must be >= {low}, got {getattr(opts, name)}")
    if opts.clip is not None and not opts.clip > 0:
        raise ConfigError(f"--clip must be > 0, got {opts.clip}")
    if not window.attribution_window_s > 0:
        raise ConfigError(f"--attribution_window_s must be > 0, got "
                          f"{window.attribution_window_s}")
    rewards = reward_config(opts.reward)
    start_us, end_us = time_option("start", window.start), time_option("end", window.end)
    started = time.perf_counter()
    staging = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}")
    with beam.Pipeline(options=options) as p:
        answers, deterministic = logged_answers(p, lake, window.attribution_window_s, rewards,
                                                start_us, end_us)
        counted = answers | "CountAnswers" >> beam.combiners.Count.Globally()
        result = answers | EstimatePolicyValue(Policy(spec, bandit), opts.slots, opts.clip,
                                               opts.replicates, opts.seed)
        (result
         | "Collect" >> beam.Map(
             lambda r, n, d: {**r, "answers": n, "skipped": {
                 **r["skipped"], **({DETERMINISTIC: d} if d else {})}},
             n=beam.pvalue.AsSingleton(counted), d=beam.pvalue.AsSingleton(deterministic))
         | "Json" >> beam.Map(json.dumps)
         | "Write" >> beam.io.WriteToText(str(staging), shard_name_template=""))
    try:
        found = json.loads(staging.read_text()) if staging.exists() else None
    finally:
        staging.unlink(missing_ok=True)
    document = {"policy": spec.canonical(), "reward": rewards.to_dict(),
                "attribution_window_s": window.attribution_window_s, "clip": opts.clip,
                "replicates": opts.replicates, "seconds": time.perf_counter() - started,
                **(found or {"answers": 0, "estimates": {}, "skipped": {}})}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2))
    log.info("OPE of %s on %s answers in %.1fs", spec.canonical(), document["answers"],
             document["seconds"])
    return document


__all__ = ["EstimatePolicyValue", "BootstrapSumsFn", "RewardModelStatsFn", "SkippedCountsFn",
           "OPEJobOptions", "logged_answers", "reward_config", "run"]


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    run()
