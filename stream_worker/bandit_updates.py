"""The contextual bandit learns from the stream: each exploring answer's randomised slots
(``bandit_slots``) count as shown (``sum x x^T``) when its decision arrives, and each event
naming one of those slots (``request_id``, ``position``) adds its reward (``sum reward * x``)
when it arrives: within a batch of the worker, seconds after the user acted.

The features of a slot are rebuilt from the decision row with the function the service chose
with (``recsys.exploration.features.bandit_features`` on the logged list), so they are what
the bandit saw. Decisions and events are counted once each, whichever worker applies them and
however often (``BanditStore.new_ids``). A reward whose slot is unknown (its decision not
applied yet by another worker, or older than the store keeps; or simply not a bandit slot) is
counted in ``unknown_slots`` and dropped, never guessed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from recsys.exploration.bandit_store import BanditStore
from recsys.exploration.features import bandit_features
from recsys.exploration.rewards import RewardConfig
from recsys.exploration.spec import EPSILON_GREEDY, PolicySpec, logged_policy

log = logging.getLogger(__name__)


@dataclass
class BanditReport:
    shown: int = 0
    rewarded: int = 0
    unknown_slots: int = 0  # rewards of slots that are not a known bandit slot


def bandit_slots(spec: PolicySpec, ranks: list[int]) -> list[int]:
    """The slots of an answer the bandit learns from: those its policy chose at random
    (the window of ``softmax``, ``uniform`` and ``linucb``; the explored slots of
    ``epsilon-greedy``). Any stochastic policy's choices teach it, so a bandit arm can start
    from what a logging policy's answers taught it."""
    if spec.policy == EPSILON_GREEDY:
        return [j for j, rank in enumerate(ranks) if rank != j]
    window = spec.explorable_slots(len(ranks))
    return list(range(len(ranks) - window, len(ranks))) if window else []


class BanditLearner:
    def __init__(self, store: BanditStore, rewards: RewardConfig | None = None):
        self.store, self.rewards = store, rewards or RewardConfig()
        self.totals = BanditReport()

    def apply(self, decisions: list[dict], events: list[dict]) -> BanditReport:
        """Count the bandit slots of ``decisions`` (lake rows), then the rewards of
        ``events`` (lake rows); decisions first, so an answer and its clicks in one batch
        meet."""
        report = BanditReport()
        self._shown(decisions, report)
        self._rewards(events, report)
        self.totals.shown += report.shown
        self.totals.rewarded += report.rewarded
        self.totals.unknown_slots += report.unknown_slots
        return report

    def _shown(self, decisions: list[dict], report: BanditReport) -> None:
        new = set(self.store.new_ids([f"decision:{d['request_id']}" for d in decisions]))
        xtx, remembered = None, {}
        for d in decisions:
            if f"decision:{d['request_id']}" not in new:
                continue
            slots = bandit_slots(logged_policy(d["policy"]), d["ranks"])
            if not slots:
                continue
            ranks = d["ranks"]
            features = bandit_features(d["list_scores"], d["list_categories"] or [],
                                       d["list_ages_s"] or [], d["list_sources"] or [],
                                       set(d["recent_categories"] or ()))
            x = features[[ranks[j] for j in slots]]
            xtx = x.T @ x if xtx is None else xtx + x.T @ x
            remembered[d["request_id"]] = {j: features[ranks[j]] for j in slots}
            report.shown += len(x)
        if xtx is not None:
            self.store.remember(remembered)
            self.store.add(xtx, None, report.shown)

    def _rewards(self, events: list[dict], report: BanditReport) -> None:
        rewarded = [(e, self.rewards.of(e)) for e in events
                    if e.get("request_id") and e.get("position") is not None]
        rewarded = [(e, r) for e, r in rewarded if r]
        if not rewarded:
            return
        features = self.store.shown_features([(e["request_id"], int(e["position"]))
                                              for e, _ in rewarded])
        matched = [(e, r, x) for (e, r), x in zip(rewarded, features) if x is not None]
        report.unknown_slots += len(rewarded) - len(matched)
        new = set(self.store.new_ids([f"event:{e['event_id']}" for e, _, _ in matched]))
        xtr = None
        for event, reward, x in matched:
            if f"event:{event['event_id']}" in new:
                xtr = reward * x if xtr is None else xtr + reward * x
                report.rewarded += 1
        if xtr is not None:
            self.store.add(None, np.asarray(xtr))


__all__ = ["BanditLearner", "BanditReport"]
