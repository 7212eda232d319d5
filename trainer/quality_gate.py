"""The quality gate a fine-tuned model passes before it is exported: one protocol metric on
the test split, the candidate against the model being served. ``slate_auc``
(trainer/slate_evaluation.py) compares the two within the answers the service logged, which
does not favour the model that chose what was shown, as catalogue-wide metrics on its own
traffic do.

Guarantees: :meth:`QualityGate.judge` passes a candidate only when its metric is at least the
current model's minus ``tolerance`` (absolute); a metric missing from either side is a
ConfigError naming the metrics there are, never a silent pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from recsys.errors import ConfigError

# the exit status of `recsys train ... --warm-start` when its gate refused the candidate (and
# nothing was exported): not a failure of the command
NOT_EXPORTED_EXIT = 3
METRIC = re.compile(r"^((recall|ndcg|map|coverage)@([1-9][0-9]*)|slate_auc)$")


@dataclass(frozen=True)
class GateDecision:
    metric: str
    current: float
    candidate: float
    tolerance: float
    passed: bool

    def summary(self) -> str:
        verdict = "passed" if self.passed else "failed"
        return (f"quality gate {verdict}: {self.metric} {self.candidate:.4f} (candidate) vs "
                f"{self.current:.4f} (current), tolerance {self.tolerance:.4f}")


@dataclass(frozen=True)
class QualityGate:
    metric: str = "recall@100"
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not METRIC.match(self.metric):
            raise ConfigError(f"gate metric must look like recall@100, ndcg@10, map@10 or "
                              f"coverage@100, or be slate_auc, got {self.metric!r}")
        if isinstance(self.tolerance, bool) or not isinstance(self.tolerance, (int, float)) \
                or not 0 <= self.tolerance < 1:
            raise ConfigError(f"gate tolerance must be a number in [0, 1), got "
                              f"{self.tolerance!r}")

    @property
    def k(self) -> int | None:
        """The metric's cut-off (None for slate_auc)."""
        return int(self.metric.partition("@")[2]) if "@" in self.metric else None

    def judge(self, current: Mapping[str, float], candidate: Mapping[str, float]
              ) -> GateDecision:
        for name, metrics in (("current", current), ("candidate", candidate)):
            if self.metric not in metrics:
                raise ConfigError(f"the {name} model has no {self.metric}; it has "
                                  f"{sorted(metrics)}")
        have, want = float(candidate[self.metric]), float(current[self.metric])
        return GateDecision(self.metric, want, have, self.tolerance,
                            have >= want - self.tolerance)


__all__ = ["QualityGate", "GateDecision", "NOT_EXPORTED_EXIT"]
