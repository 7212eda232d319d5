"""Off-policy evaluation judged against the truth: logged answers drawn on the synthetic
platform, whose response model knows every user's true click probability for every item in
every slot.

Each simulated answer: a user drawn from the population, a ranked list of ``list_size`` items
(the best by a noisy copy of the user's true click logit, as a ranker would order them), the
logging policy's draw from it, and a click per slot drawn from the true model
(``recsys.data.synthetic.responses.click_probability``). A policy's true value is the exact
expected clicks per answer, ``sum_j sum_a P(a in slot j) p(user, a, j)``, averaged over a large
independent sample of answers' contexts (its Monte Carlo error is reported).

``run_ope_check`` repeats the logging with fresh seeds and reports, per logging policy, target
policy and estimator, the mean estimate, the truth, the relative error and how often the 95%
interval covered the truth.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from recsys.data.synthetic.config import SyntheticConfig
from recsys.data.synthetic.population import make_items, make_users
from recsys.data.synthetic.responses import click_probability
from recsys.data.synthetic.vocabulary import CATEGORIES
from recsys.exploration.features import bandit_features
from recsys.exploration.ope import LoggedAnswer, evaluate
from recsys.exploration.policies import Policy
from recsys.exploration.spec import parse_policy

log = logging.getLogger(__name__)
US_PER_S = 1_000_000


@dataclass(frozen=True)
class Platform:
    """The population answers are drawn from."""

    users: object
    items: object
    n_categories: int
    now_us: int

    @classmethod
    def make(cls, users: int = 2_000, items: int = 3_000, seed: int = 7) -> "Platform":
        cfg = SyntheticConfig(users=users, items=items, days=7, seed=seed)
        rng = np.random.default_rng(seed)
        made_items = make_items(cfg, rng)
        return cls(make_users(cfg, rng), made_items, cfg.categories,
                   int(made_items.created_us.max()) + US_PER_S)


@dataclass(frozen=True)
class Context:
    """One answer's user and ranked list (item indices, scores, features)."""

    user: int
    items: np.ndarray
    scores: np.ndarray
    features: np.ndarray


def draw_contexts(platform: Platform, n: int, rng: np.random.Generator, list_size: int = 20,
                  candidates: int = 200, noise: float = 0.7) -> list[Context]:
    """``n`` contexts: a random user and the best ``list_size`` of ``candidates`` random
    items by the user's true click logit at slot 0 plus Gaussian ``noise``."""
    users, items = platform.users, platform.items
    out = []
    for _ in range(n):
        u = int(rng.integers(users.n))
        pool = rng.choice(items.n, size=candidates, replace=False)
        p = click_probability(users, items, np.full(candidates, u), pool,
                              np.zeros(candidates), platform.n_categories)
        score = np.log(p / (1 - p)) + rng.normal(scale=noise, size=candidates)
        best = np.argsort(-score)[:list_size]
        chosen, scores = pool[best], score[best]
        categories = [CATEGORIES[c] for c in items.category[chosen]]
        ages = (platform.now_us - items.created_us[chosen]) / US_PER_S
        recent = {CATEGORIES[c] for c in np.argsort(-users.taste[u])[:2]}
        features = bandit_features(scores, categories, ages.tolist(),
                                   ["two-tower"] * list_size, recent)
        out.append(Context(u, chosen, scores, features))
    return out


def _truth_probabilities(platform: Platform, context: Context, k: int) -> np.ndarray:
    """``(k, list)``: the true click probability of each listed item in each slot."""
    m = len(context.items)
    slots = np.repeat(np.arange(k), m)
    return click_probability(platform.users, platform.items, np.full(k * m, context.user),
                             np.tile(context.items, k), slots,
                             platform.n_categories).reshape(k, m)


def true_value(platform: Platform, policy: Policy, contexts: list[Context], k: int
               ) -> tuple[float, float]:
    """The policy's exact expected clicks per answer averaged over ``contexts``, and that
    average's standard error."""
    values = np.array([(policy.marginals(c.scores, k, c.features)
                        * _truth_probabilities(platform, c, k)).sum() for c in contexts])
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))


def log_answers(platform: Platform, policy: Policy, contexts: list[Context], k: int,
                rng: np.random.Generator) -> list[LoggedAnswer]:
    """The logging policy's answers to ``contexts`` with clicks from the true model."""
    out = []
    for n, c in enumerate(contexts):
        order = policy.choose(c.scores, k, rng, c.features)
        slate = policy.slate(c.scores, k, order, c.features)
        p = _truth_probabilities(platform, c, k)[np.arange(len(order)), order]
        clicks = (rng.random(len(order)) < p).astype(np.float64)
        out.append(LoggedAnswer(f"r{n}", f"u{c.user}", c.scores, order, slate.propensity,
                                slate.cascade, clicks, c.features))
    return out


def run_ope_check(logging_specs: list[str], target_specs: list[str], runs: int = 20,
                  answers: int = 10_000, k: int = 10, truth_contexts: int = 20_000,
                  replicates: int = 200, seed: int = 0, platform: Platform | None = None,
                  list_size: int = 20,
                  estimators: tuple[str, ...] = ("ips", "snips", "dr")) -> list[dict]:
    """Rows of (logging, target, estimator): truth, mean estimate, relative error of the
    mean, mean absolute relative error per run, interval coverage over ``runs``."""
    platform = platform or Platform.make()
    truth_rng = np.random.default_rng([seed, 1])
    truth_set = draw_contexts(platform, truth_contexts, truth_rng, list_size)
    targets = {text: Policy(parse_policy(text)) for text in target_specs}
    truths = {text: true_value(platform, policy, truth_set, k)
              for text, policy in targets.items()}
    rows = []
    for logging_text in logging_specs:
        logger = Policy(parse_policy(logging_text))
        results: dict[tuple[str, str], list[dict]] = {}
        for run in range(runs):
            started = time.perf_counter()
            rng = np.random.default_rng([seed, 2, run])
            contexts = draw_contexts(platform, answers, rng, list_size)
            logged = log_answers(platform, logger, contexts, k, rng)
            for text, target in targets.items():
                result, _ = evaluate(logged, target, k, replicates=replicates, seed=run)
                for name in (*estimators, "mean_weight"):
                    results.setdefault((text, name), []).append(result[name])
            log.info("logging %s, run %d/%d: %d answers in %.1f s", logging_text, run + 1,
                     runs, answers, time.perf_counter() - started)
        for (text, name), per_run in results.items():
            if name == "mean_weight":
                continue
            truth, truth_se = truths[text]
            estimates = np.array([r["estimate"] for r in per_run])
            covered = [r["low"] <= truth <= r["high"] for r in per_run]
            rows.append({"logging": logging_text, "target": text, "estimator": name,
                         "truth": truth, "truth_se": truth_se,
                         "mean_estimate": float(estimates.mean()),
                         "relative_error_of_mean": float(estimates.mean() / truth - 1),
                         "mean_abs_relative_error": float(np.abs(estimates / truth - 1).mean()),
                         "max_abs_relative_error": float(np.abs(estimates / truth - 1).max()),
                         "coverage": float(np.mean(covered)), "runs": len(per_run),
                         "mean_weight": float(np.mean([r["estimate"] for r in
                                                       results[(text, "mean_weight")]]))})
    return rows


__all__ = ["Platform", "Context", "draw_contexts", "true_value", "log_answers",
           "run_ope_check"]
