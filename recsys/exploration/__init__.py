"""Exploration on the served list: policy specs, the policies with their exact
propensities, the contextual bandit's parameters and its features, and off-policy
evaluation."""

from recsys.exploration.linucb import LinUCBSnapshot, LinUCBState
from recsys.exploration.policies import Policy, Slate
from recsys.exploration.spec import POLICIES, PolicySpec, parse_policy

__all__ = ["Policy", "Slate", "PolicySpec", "parse_policy", "POLICIES", "LinUCBState",
           "LinUCBSnapshot"]
