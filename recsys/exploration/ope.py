"""Off-policy evaluation: what a candidate exploration policy would have earned on the answers
another policy served, from the logged answers alone.

A logged answer holds the ranked list the logging policy drew from (scores, and features for
the bandit and the reward model), what it showed in each slot with the logged propensities
(the marginal ``P(item in slot)`` and the cascade ``P(slots 0..j)``), and each slot's reward.
A policy's value is the expected reward per answer, summed over its slots.

Estimators (per slot, then summed over slots; Li et al., WSDM 2018 for lists; McInerney et
al., KDD 2020 for the cascade):

* ``ips``: inverse propensity scoring with each slot's marginal ratio ``pi_e(a_j in j) /
  pi_b(a_j in j)`` (independent-slot IPS: unbiased when a slot's reward depends on its own
  item);
* ``snips``: the same, self-normalised per slot (divided by the slot's mean weight);
* ``rips`` / ``snrips``: the cascade ratio ``pi_e(a_1..a_j) / pi_b(a_1..a_j)`` (a slot's
  reward may depend on the items above it), plain and self-normalised;
* ``slate_ips``: the whole answer's ratio for every slot (unbiased for any reward, the widest);
* ``dr``: doubly robust, per slot: the reward model's value of the candidate policy's slot
  (``sum_a pi_e(a in j) q(a, j)``) plus the ``ips`` weight times the logged reward's residual
  ``r_j - q(a_j, j)``. The reward model is ridge regression on the item's features at the
  time it was shown and the slot, cross-fitted: an answer is corrected with the model fitted
  on the other users' answers.

Weights above ``clip`` are cut to it (bias traded for variance; ``clip`` None: none are).
Uncertainty: a Poisson bootstrap over users (every answer of a user gets the same Poisson(1)
multiplier per replicate, drawn from a hash of the user): sums that merge in any order, so the
same code runs in one process or as a Beam ``CombineFn`` over a year of logs; the 95% interval
is the replicates' 2.5 and 97.5 percentiles. The mean ``ips`` weight is reported as a health
check: about 1 when the logs and their propensities are sound.

Guarantees: an answer whose logged propensities are missing, not finite or not in (0, 1] is
skipped and counted by reason, never guessed; estimates are pure functions of the answers,
the policy, ``clip``, the replicates and the seed.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from recsys.exploration.policies import Policy

ESTIMATORS = ("ips", "snips", "rips", "snrips", "slate_ips", "dr")
FOLDS = 2
# statistics per slot, in this order (rows of an answer's statistics)
_SHOWN, _REWARD, _IPS_WR, _IPS_W, _RIPS_WR, _RIPS_W, _SLATE_WR, _DR, _DM = range(9)
_ROWS = 9


@dataclass(frozen=True)
class LoggedAnswer:
    """One served answer as OPE reads it (arrays over the ranked list or over slots)."""

    request_id: str
    user_id: str
    scores: np.ndarray  # the ranked list's scores, best first
    order: np.ndarray  # per slot: the index in the list of the item shown
    propensity: np.ndarray  # per slot: logged P(that item in that slot)
    cascade: np.ndarray  # per slot: logged P(slots 0..j as shown)
    rewards: np.ndarray  # per slot
    features: np.ndarray | None = None  # (len(scores), d): per item, at the time shown


def fold_of(user_id: str) -> int:
    """The cross-fitting fold of a user (stable across processes)."""
    return zlib.crc32(user_id.encode("utf-8")) % FOLDS


def problem(answer: LoggedAnswer) -> str | None:
    """Why OPE cannot use ``answer`` (None: it can)."""
    for name in ("propensity", "cascade"):
        values = answer.__getattribute__(name)
        if values is None or len(values) != len(answer.order):
            return f"no logged {name}"
        values = np.asarray(values, dtype=np.float64)
        if not np.isfinite(values).all():
            return f"logged {name} missing"
        if (values <= 0).any() or (values > 1 + 1e-6).any():
            return f"logged {name} outside (0, 1]"
    if len(answer.rewards) != len(answer.order):
        return "rewards do not match the slots"
    return None


# -- the reward model ----------------------------------------------------------------------
def _design(features: np.ndarray, slots: np.ndarray, k: int) -> np.ndarray:
    """Rows ``[features of the item, one-hot slot]`` for a reward model."""
    onehot = np.zeros((len(slots), k))
    onehot[np.arange(len(slots)), slots] = 1.0
    return np.hstack([features, onehot])


def reward_model_statistics(answer: LoggedAnswer, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(X^T X, X^T r)`` of one answer's shown slots, for ``RewardModel.fit``."""
    slots = np.arange(min(len(answer.order), k))
    x = _design(np.asarray(answer.features)[answer.order[slots]], slots, k)
    return x.T @ x, x.T @ np.asarray(answer.rewards, dtype=np.float64)[slots]


@dataclass(frozen=True)
class RewardModel:
    """``q(item, slot)``: ridge regression of a slot's reward on the item's features and the
    slot."""

    coef: np.ndarray
    k: int

    @classmethod
    def fit(cls, xtx: np.ndarray, xtr: np.ndarray, k: int, ridge: float = 1.0) -> "RewardModel":
        return cls(np.linalg.solve(xtx + ridge * np.eye(len(xtx)), xtr), k)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """``(k, items)``: the predicted reward of each item in each slot."""
        features = np.asarray(features, dtype=np.float64)
        d = features.shape[1]
        return (features @ self.coef[:d])[None, :] + self.coef[d:d + self.k, None]


# -- one answer's statistics -----------------------------------------------------------------
def answer_statistics(answer: LoggedAnswer, target: Policy, k: int, clip: float | None = None,
                      model: RewardModel | None = None) -> np.ndarray:
    """``(9, k)`` sums one answer adds (shown, reward, and the estimators' numerators and
    weights per slot; ``k`` is the widest answer counted: the target fills as many slots as
    the answer had, and an answer of more than ``k`` slots counts its first ``k``); ``model``
    None leaves the ``dr`` rows at the ``ips`` values."""
    own = len(answer.order)
    slots = min(own, k)
    order = np.asarray(answer.order, dtype=np.int64)
    rewards = np.asarray(answer.rewards[:slots], dtype=np.float64)
    features = answer.features
    if model is not None:
        marginals = target.marginals(answer.scores, own, features)[:slots]  # (slots, items)
        target_at = marginals[np.arange(slots), order[:slots]]
    else:
        marginals = None
        target_at = np.diag(target.marginals(answer.scores, own, features,
                                             items=order))[:slots]
    cascade = np.cumprod(target.step_probabilities(answer.scores, own, order,
                                                   features))[:slots]
    order = order[:slots]
    limit = math.inf if clip is None else clip
    w = np.minimum(target_at / np.asarray(answer.propensity[:slots], dtype=np.float64), limit)
    v = np.minimum(cascade / np.asarray(answer.cascade[:slots], dtype=np.float64), limit)
    u = np.full(slots, v[-1] if slots else 0.0)
    out = np.zeros((_ROWS, k))
    out[_SHOWN, :slots] = 1.0
    out[_REWARD, :slots] = rewards
    out[_IPS_WR, :slots], out[_IPS_W, :slots] = w * rewards, w
    out[_RIPS_WR, :slots], out[_RIPS_W, :slots] = v * rewards, v
    out[_SLATE_WR, :slots] = u * rewards
    if model is None:
        out[_DR, :slots] = w * rewards
    else:
        q = model.predict(np.asarray(features))[:slots]  # (slots, items)
        direct = (marginals * q).sum(axis=1)
        out[_DM, :slots] = direct
        out[_DR, :slots] = direct + w * (rewards - q[np.arange(slots), order])
    return out


def estimates(sums: np.ndarray, answers: float) -> dict[str, float]:
    """The estimators' values (and ``logged``, the logging policy's own mean, ``dm``, the
    reward model's alone, ``mean_weight``) from summed statistics of ``answers`` answers."""
    if answers <= 0:
        return {name: math.nan for name in (*ESTIMATORS, "logged", "dm", "mean_weight")}
    shown = sums[_SHOWN]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = shown / answers
        sn = np.where(sums[_IPS_W] > 0, sums[_IPS_WR] / sums[_IPS_W], 0.0) * share
        snr = np.where(sums[_RIPS_W] > 0, sums[_RIPS_WR] / sums[_RIPS_W], 0.0) * share
    return {
        "ips": float(sums[_IPS_WR].sum() / answers),
        "snips": float(sn.sum()),
        "rips": float(sums[_RIPS_WR].sum() / answers),
        "snrips": float(snr.sum()),
        "slate_ips": float(sums[_SLATE_WR].sum() / answers),
        "dr": float(sums[_DR].sum() / answers),
        "logged": float(sums[_REWARD].sum() / answers),
        "dm": float(sums[_DM].sum() / answers),
        "mean_weight": float(sums[_IPS_W].sum() / max(shown.sum(), 1.0)),
    }


# -- the bootstrap ---------------------------------------------------------------------------
@dataclass
class BootstrapSums:
    """Summed statistics of the full sample (replicate 0) and ``replicates`` Poisson
    bootstrap replicates, clustered by user; ``merge`` adds another's (any order)."""

    k: int
    replicates: int = 500
    seed: int = 0
    sums: np.ndarray = field(init=False)
    counts: np.ndarray = field(init=False)
    skipped: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.sums = np.zeros((self.replicates + 1, _ROWS, self.k))
        self.counts = np.zeros(self.replicates + 1)

    def multipliers(self, user_id: str) -> np.ndarray:
        rng = np.random.default_rng([self.seed, zlib.crc32(user_id.encode("utf-8"))])
        return np.concatenate(([1.0], rng.poisson(1.0, self.replicates)))

    def add(self, user_id: str, statistics: np.ndarray) -> None:
        m = self.multipliers(user_id)
        self.sums += m[:, None, None] * statistics[None]
        self.counts += m

    def merge(self, other: "BootstrapSums") -> "BootstrapSums":
        self.sums += other.sums
        self.counts += other.counts
        self.skipped.update(other.skipped)
        return self

    def result(self, level: float = 0.95) -> dict[str, dict[str, float]]:
        """Per estimator: ``estimate``, ``low``, ``high`` (percentile interval at ``level``)
        and ``se`` (the replicates' standard deviation)."""
        point = estimates(self.sums[0], self.counts[0])
        replicated = [estimates(self.sums[b], self.counts[b])
                      for b in range(1, self.replicates + 1)]
        tail = (1 - level) / 2 * 100
        out = {}
        for name, value in point.items():
            values = np.array([r[name] for r in replicated])
            values = values[np.isfinite(values)]
            low, high = (np.percentile(values, [tail, 100 - tail]) if len(values)
                         else (math.nan, math.nan))
            out[name] = {"estimate": value, "low": float(low), "high": float(high),
                         "se": float(values.std(ddof=1)) if len(values) > 1 else math.nan}
        return out


def add_fold_statistics(stats: list, answer: LoggedAnswer, k: int) -> list:
    """``stats`` (one ``(X^T X, X^T r)`` or None per fold) with ``answer``'s added to its
    user's fold (unchanged for an answer without features)."""
    if answer.features is None:
        return stats
    fold = fold_of(answer.user_id)
    stats[fold] = _sum_statistics(stats[fold], reward_model_statistics(answer, k))
    return stats


def merge_fold_statistics(many) -> list:
    """Per fold, the sum of several ``add_fold_statistics`` results."""
    merged: list = [None] * FOLDS
    for stats in many:
        for fold, s in enumerate(stats):
            merged[fold] = _sum_statistics(merged[fold], s)
    return merged


def _sum_statistics(a, b):
    """``(X^T X, X^T r)`` pairs added (None is the empty sum)."""
    if a is None or b is None:
        return b if a is None else a
    return a[0] + b[0], a[1] + b[1]


def models_from_folds(stats: list, k: int, ridge: float = 1.0) -> list[RewardModel] | None:
    """One model per fold, each fitted on the other folds' statistics (on all of them when
    only one fold has answers); None when no fold has any."""
    present = [s for s in stats if s is not None]
    if not present:
        return None
    models = []
    for fold in range(FOLDS):
        others = [s for f, s in enumerate(stats) if f != fold and s is not None] or present
        models.append(RewardModel.fit(sum(s[0] for s in others), sum(s[1] for s in others),
                                      k, ridge))
    return models


def fit_reward_models(answers, k: int, ridge: float = 1.0) -> list[RewardModel] | None:
    """One model per fold, each fitted on the other folds' answers (None without
    features)."""
    stats: list = [None] * FOLDS
    for answer in answers:
        if answer.features is None:
            return None
        add_fold_statistics(stats, answer, k)
    return models_from_folds(stats, k, ridge)


def evaluate(answers, target: Policy, k: int, clip: float | None = None,
             replicates: int = 500, seed: int = 0) -> tuple[dict, Counter]:
    """Every estimator's value of ``target`` on ``answers`` (a re-iterable collection of
    ``LoggedAnswer``) with bootstrap intervals, and the answers skipped by reason. In one
    process; ``beam_jobs.ope`` runs the same steps as a Beam pipeline."""
    usable, skipped = [], Counter()
    for answer in answers:
        reason = problem(answer)
        if reason is None:
            usable.append(answer)
        else:
            skipped[reason] += 1
    models = fit_reward_models(usable, k)
    sums = BootstrapSums(k, replicates, seed)
    for answer in usable:
        model = None if models is None else models[fold_of(answer.user_id)]
        sums.add(answer.user_id, answer_statistics(answer, target, k, clip, model))
    sums.skipped = skipped
    return sums.result(), skipped


__all__ = ["LoggedAnswer", "RewardModel", "BootstrapSums", "ESTIMATORS", "answer_statistics",
           "estimates", "evaluate", "fit_reward_models", "fold_of", "problem",
           "reward_model_statistics", "add_fold_statistics", "merge_fold_statistics",
           "models_from_folds"]
