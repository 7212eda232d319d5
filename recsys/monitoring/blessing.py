"""The blessing a candidate version needs before it is promoted (TFX's word: a model the
evaluator blessed is the only kind the pusher pushes): offline metrics against the stable
version's, an off-policy estimate where the logs support one, and its latency under load.

* offline: for each configured metric, the candidate's value at least ``min_value`` (when
  set) and at most ``max_drop`` below the stable version's (an absolute change; 0: at least
  as good). A metric missing on either side fails, naming it (never a silent pass);
* off-policy: the candidate's estimated reward at most ``ope_max_drop`` below stable's, when
  an estimate was made (a stochastic logging policy is needed: `recsys ope`); without one the
  check is marked skipped, with the reason, and does not bless or refuse;
* latency: the candidate's retrieval + ranking p99 under load at most ``latency_p99_ms``.

Guarantees: ``blessed`` is true only when every check that ran passed and the offline check
ran; every check carries the values it compared and why it passed, failed or was skipped.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from recsys.config import Config, non_negative_number, positive_number, setting
from recsys.errors import ConfigError

DEFAULT_METRICS = {"recall@100": {"max_drop": 0.0}, "ndcg@10": {"max_drop": 0.002}}


def _metric_thresholds(value: Any) -> bool:
    if not isinstance(value, Mapping) or not value:
        return False
    for name, threshold in value.items():
        if not isinstance(name, str) or not isinstance(threshold, Mapping):
            return False
        unknown = set(threshold) - {"min_value", "max_drop"}
        numbers = [v for v in threshold.values() if v is not None]
        if unknown or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                              and v >= 0 for v in numbers):
            return False
    return True


@dataclass(frozen=True)
class GateConfig(Config):
    """Attributes:
        metrics: metric -> {min_value, max_drop} (both optional, numbers >= 0).
        ope_max_drop: how far below stable's the candidate's off-policy estimate may be.
        latency_p99_ms: the candidate's retrieval + ranking p99 under load, at most.
    """

    metrics: dict = setting(factory=lambda: dict(DEFAULT_METRICS))
    ope_max_drop: float = setting(0.0, non_negative_number)
    latency_p99_ms: float = setting(50.0, positive_number)

    def check_together(self) -> None:
        if not _metric_thresholds(self.metrics):
            raise ConfigError(f"gate.metrics must map metric names to {{min_value, max_drop}} "
                              f"(numbers >= 0), got {self.metrics!r}")


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # passed, failed, skipped; a canary's p99 also warned (recsys.monitoring.canary)
    detail: str
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Blessing:
    candidate: int
    stable: int | None
    checks: tuple[Check, ...]

    @property
    def blessed(self) -> bool:
        ran = [c for c in self.checks if c.status != "skipped"]
        offline = any(c.name.startswith("offline") and c.status != "skipped"
                      for c in self.checks)
        return offline and all(c.status == "passed" for c in ran)

    def to_dict(self) -> dict:
        return {"candidate": self.candidate, "stable": self.stable, "blessed": self.blessed,
                "checks": [asdict(c) for c in self.checks]}

    def summary(self) -> str:
        lines = [f"version {self.candidate} against "
                 f"{'no stable version' if self.stable is None else f'stable {self.stable}'}: "
                 f"{'BLESSED' if self.blessed else 'NOT BLESSED'}"]
        lines += [f"  {c.status:<8} {c.name:<22} {c.detail}" for c in self.checks]
        return "\n".join(lines)


def offline_checks(candidate: Mapping[str, float], stable: Mapping[str, float] | None,
                   cfg: GateConfig) -> list[Check]:
    """One check per configured metric (without a stable version: the floors only)."""
    out = []
    for metric, threshold in cfg.metrics.items():
        name = f"offline {metric}"
        have = candidate.get(metric)
        if have is None or not math.isfinite(float(have)):
            out.append(Check(name, "failed", f"the candidate has no {metric} (it has "
                                             f"{', '.join(sorted(candidate)) or 'none'})"))
            continue
        have = float(have)
        floor, drop = threshold.get("min_value"), threshold.get("max_drop")
        problems, values = [], {"candidate": have}
        if floor is not None and have < floor:
            problems.append(f"{have:.4f} < min_value {floor}")
        if stable is not None and drop is not None:
            want = stable.get(metric)
            if want is None:
                problems.append(f"the stable version has no {metric}")
            else:
                values["stable"] = float(want)
                if have < float(want) - drop:
                    problems.append(f"{have:.4f} is more than {drop} below stable's "
                                    f"{float(want):.4f}")
        detail = "; ".join(problems) or (
            f"{have:.4f}" + (f" vs stable {values['stable']:.4f}" if "stable" in values else "")
            + (f" (max drop {drop})" if drop is not None and "stable" in values else ""))
        out.append(Check(name, "failed" if problems else "passed", detail, values))
    return out


def ope_check(candidate: float | None, stable: float | None, cfg: GateConfig,
              why_none: str = "no off-policy estimate was given (`recsys ope` needs logs of "
                              "a stochastic logging policy)") -> Check:
    if candidate is None or stable is None:
        return Check("off-policy estimate", "skipped", why_none)
    passed = candidate >= stable - cfg.ope_max_drop
    return Check("off-policy estimate", "passed" if passed else "failed",
                 f"{candidate:.4f} vs stable {stable:.4f} (max drop {cfg.ope_max_drop})",
                 {"candidate": candidate, "stable": stable})


def latency_check(p50_ms: float | None, p99_ms: float | None, cfg: GateConfig,
                  detail: str = "") -> Check:
    if p99_ms is None:
        return Check("latency under load", "skipped", detail or "no latency measured")
    passed = p99_ms <= cfg.latency_p99_ms
    return Check("latency under load", "passed" if passed else "failed",
                 f"p50 {p50_ms:.1f} ms, p99 {p99_ms:.1f} ms (limit {cfg.latency_p99_ms:g} ms)"
                 + (f"; {detail}" if detail else ""), {"p50_ms": p50_ms, "p99_ms": p99_ms})


__all__ = ["GateConfig", "Check", "Blessing", "offline_checks", "ope_check", "latency_check",
           "DEFAULT_METRICS"]
