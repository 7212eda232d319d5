"""What the controller remembers between steps (``state.json``) and what it decided
(``decisions.jsonl``: one JSON line per step, with its evidence), in ``state_dir``.

Guarantees: the state file is replaced atomically (a step that dies leaves the previous state);
decisions are appended and fsynced, never rewritten; a state file that is not the
controller's is a ConfigError naming it, never silently reset.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsys.errors import ConfigError

STATE, DECISIONS = "state.json", "decisions.jsonl"
STAGES = ("idle", "canary")


@dataclass
class ControllerState:
    stage: str = "idle"
    candidate: int | None = None  # the canary's version
    canary_started_s: float | None = None
    canary_baseline: dict = field(default_factory=dict)  # label -> {tiers, buckets}
    canary_last: dict = field(default_factory=dict)  # the previous step's scrape, same shape
    canary_failed_checks: int = 0  # failed analysis steps of the running canary
    drift_tracker: dict | None = None  # DriftTracker.to_dict(), against ``drift_version``
    drift_version: int | None = None
    drift_cursor_s: float = 0.0  # samples up to here were tested
    drift_window_starts: list = field(default_factory=list)  # the latest tested windows'
    candidate_trigger: str | None = None  # what retrain made the canary's version
    last_retrain_s: float | None = None
    events_at_last_retrain: int | None = None
    steps: int = 0
    last_decisions: dict = field(default_factory=dict)  # decision -> when last taken


def read_state(state_dir: Path) -> ControllerState:
    path = Path(state_dir) / STATE
    if not path.exists():
        return ControllerState()
    try:
        raw = json.loads(path.read_text())
        state = ControllerState(**raw)
    except (json.JSONDecodeError, TypeError) as exc:
        raise ConfigError(f"{path} is not the controller's state ({exc}); move it away to "
                          "start afresh") from None
    if state.stage not in STAGES:
        raise ConfigError(f"{path}: unknown stage {state.stage!r} (known: {STAGES})")
    return state


def write_state(state_dir: Path, state: ControllerState) -> None:
    path = Path(state_dir) / STATE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(state), indent=2))
    os.replace(tmp, path)


def log_decision(state_dir: Path, decision: str, reason: str, now_s: float,
                 **evidence: Any) -> dict:
    """Append one decision; returns it."""
    entry = {"time": dt.datetime.fromtimestamp(now_s, dt.timezone.utc).isoformat(
        timespec="seconds"), "at_s": now_s, "decision": decision, "reason": reason,
        "evidence": evidence}
    path = Path(state_dir) / DECISIONS
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(entry, default=str, sort_keys=True) + "\n")
        out.flush()
        os.fsync(out.fileno())
    return entry


def read_decisions(state_dir: Path) -> list[dict]:
    path = Path(state_dir) / DECISIONS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


__all__ = ["ControllerState", "read_state", "write_state", "log_decision", "read_decisions",
           "STAGES"]
