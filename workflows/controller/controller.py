"""One step of the retraining controller (`recsys controller step`, or every
``--interval`` seconds with `recsys controller run`).

Idle: a retrain is triggered by drift (a feature of the stable version's serving windows
drifting in ``drift.alerts.consecutive_windows`` windows in a row: the drift retrain's
commands, which know when the drift began), by the schedule (``retrain_every_s`` since the
last retrain: the full retrain's commands) or by data volume (``retrain_min_new_events`` more
events in the lake), none of them within ``cooldown_s`` of the last retrain. The retrain's
commands run (Beam features, warm start or full training, export); their newest version is
blessed against stable (recsys/monitoring/blessing.py); a blessed candidate becomes the
``canary`` alias and the canary's experiment is written into the service's experiments file.

Canary: every step is one analysis step (recsys/monitoring/canary.py): errors, latency and CPU of
the canary label against stable's over the interval since the previous step, CTR since the
canary began. The stable version's drift windows are tested at canary steps too (a shift
during a canary is not missed; its streak acts at the next idle step). When
``canary.failed_checks`` steps have failed a guardrail, the canary is rolled back (the
experiment removed first, then the alias); after its period, at a step where every guardrail
passed, the candidate becomes ``stable`` (the experiment removed, the canary alias retired).

Guarantees: every step appends its decision (watch, canary's wait, promote, rollback, error;
a retrain, then what came of it: refuse, canary, or promote for a first version) with its
evidence to ``decisions.jsonl``, and writes the state and the controller's gauges; alias
changes go through the registry (its log records the same evidence). A step that raises
leaves the previous state, and logs an ``error`` decision.
"""

from __future__ import annotations

import json
import logging
import random
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from recsys.model_contract.registry import Registry
from recsys.model_contract.versioning import versions
from recsys.monitoring.canary import canary_verdict
from trainer.quality_gate import NOT_EXPORTED_EXIT
from workflows.controller import canary_traffic, label_status
from workflows.controller.config import ControllerSettings
from workflows.controller.drift_watch import (
    check_drift,
    new_user_samples,
    serving_reference,
    tracker_from,
    training_reference,
)
from workflows.controller.journal import (
    ControllerState,
    log_decision,
    read_state,
    write_state,
)

log = logging.getLogger(__name__)
METRICS_FILE = "controller.prom"
KEPT_WINDOWS = 64  # the tested windows' starts the state keeps (streaks longer than this
# date from the oldest kept)


def drift_onset(window_starts: list[float], streak: int) -> str:
    """The start (ISO 8601, UTC) of the first of the last ``streak`` windows."""
    import datetime as dt

    first = window_starts[-min(streak, len(window_starts))]
    return dt.datetime.fromtimestamp(first, dt.timezone.utc).isoformat()


@dataclass
class Hooks:
    """What a step does outside its own files (replaced in tests of the decisions alone)."""

    run_command: Callable[[list[str]], int]
    scrape: Callable[[str], dict]
    ctr: Callable[..., tuple[dict | None, str]]
    sleep: Callable[[float], None] = time.sleep
    # (model server REST url, model, label) -> the version the label resolves to there
    label_version: Callable[[str, str, str], int | None] = label_status.label_version


def _run(command: list[str]) -> int:
    log.info("running %s", " ".join(command))
    return subprocess.run(command, check=False).returncode


DEFAULT_HOOKS = Hooks(_run, canary_traffic.scrape, canary_traffic.ctr_comparison)


class Controller:
    def __init__(self, settings: ControllerSettings, hooks: Hooks = DEFAULT_HOOKS,
                 windows=None):
        """``windows``: a ServingWindows (None: from ``redis_url``, or no drift trigger)."""
        self.settings, self.cfg, self.hooks = settings, settings.controller, hooks
        self.base = Path(self.cfg.model_base_path)
        self.state_dir = Path(self.cfg.state_dir)
        self.registry = Registry(self.base)
        self._windows = windows

    # -- the step -----------------------------------------------------------------------
    def step(self, now_s: float | None = None) -> dict:
        """One step; returns the decision logged."""
        now_s = time.time() if now_s is None else now_s
        state = read_state(self.state_dir)
        self._logged: list[dict] = []
        try:
            if state.stage == "canary":
                decision = self._canary_step(state, now_s)
            else:
                decision = self._idle_step(state, now_s)
        except Exception as exc:  # noqa: BLE001 - logged as a decision, state kept
            log.exception("controller step failed")
            decision = self._log("error", f"{type(exc).__name__}: {exc}", now_s,
                                 stage=state.stage)
            state = read_state(self.state_dir)
        state.steps += 1
        state.last_decisions.update({d["decision"]: d["at_s"] for d in self._logged})
        if decision["decision"] != "error":
            write_state(self.state_dir, state)
        self._write_metrics(state, decision, now_s)
        return decision

    # -- idle -----------------------------------------------------------------------------
    def _idle_step(self, state: ControllerState, now_s: float) -> dict:
        stable = self.registry.aliases().get("stable")
        drift = self._drift(state, stable)
        cooling = state.last_retrain_s is not None and \
            now_s - state.last_retrain_s < self.cfg.cooldown_s
        trigger, kind = self._trigger(state, now_s, drift, cooling)
        evidence = {"stable": stable, "drift": drift, "cooling_down": cooling}
        if trigger is None:
            return self._log("watch", "no trigger", now_s, **evidence)
        self._log("retrain", trigger, now_s, full=kind == "schedule", **evidence)
        return self._retrain(state, now_s, stable, trigger, kind,
                             (drift or {}).get("since") if kind == "drift" else None)

    def _drift(self, state: ControllerState, stable: int | None) -> dict | None:
        windows = self._serving_windows()
        if windows is None or stable is None:
            return None
        renew_each = self.cfg.drift_reference_renew == "promotion"
        if state.drift_version is None or (renew_each and state.drift_version != stable):
            # a new reference, from this stable version's served queries
            state.drift_tracker, state.drift_version = None, stable
            state.drift_window_starts = []
        reference, note = self._reference(windows, state, state.drift_version)
        if reference is None:
            return {"window": None, "alerts": [], "reference": note}
        tracker = tracker_from(state.drift_tracker, self.settings.alerts)
        found = check_drift(windows, reference, stable, tracker, state.drift_cursor_s,
                            self.cfg.drift_min_samples, self.settings.drift_features,
                            self.cfg.drift_ignore)
        if found is None:
            return {"window": None, "alerts": []}
        state.drift_tracker, state.drift_cursor_s = tracker.to_dict(), found.cursor_s
        state.drift_window_starts = [*state.drift_window_starts, found.first_s][-KEPT_WINDOWS:]
        out = {"window": tracker.windows, "samples": found.samples, "reference_of": state.
               drift_version, "drifting": found.drifting, "alerts": found.alerts,
               "streaks": found.streaks, "features": found.results}
        if found.alerts:
            out["since"] = drift_onset(state.drift_window_starts,
                                       max(found.streaks[f] for f in found.alerts))
        return out

    def _reference(self, windows, state: ControllerState, stable: int
                   ) -> tuple[dict | None, str]:
        """Version ``stable``'s drift reference (see drift_watch.py), or None and why; a
        serving reference is captured from its first served queries once there are enough,
        and kept in ``STATE_DIR/reference-vN.json``."""
        if self.cfg.drift_reference == "training":
            return training_reference(self.base, stable), "training"
        path = self.state_dir / f"reference-v{stable}.json"
        if path.exists():
            return json.loads(path.read_text()), "serving"
        # one per user, as the windows tested against it
        samples, newest_s = new_user_samples(windows, stable, state.drift_cursor_s)
        if len(samples) < self.cfg.drift_reference_samples:
            return None, (f"capturing: {len(samples)} of the "
                          f"{self.cfg.drift_reference_samples} served queries (one per user) "
                          f"of version {stable} it needs")
        # a uniform sample of all it has served so far (its size picks the tests)
        chosen = random.Random(stable).sample(range(len(samples)),
                                              self.cfg.drift_reference_samples)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(serving_reference([samples[i] for i in sorted(chosen)])))
        state.drift_cursor_s = newest_s
        # the samples it was built from are not tested against it
        return None, (f"captured from {len(chosen)} of the {len(samples)} served queries of "
                      f"version {stable}")

    def _trigger(self, state: ControllerState, now_s: float, drift: dict | None,
                 cooling: bool) -> tuple[str | None, str | None]:
        """(why, which: drift, schedule or volume), or (None, None)."""
        if cooling:
            return None, None
        if drift and drift.get("alerts"):
            return (f"drift: {', '.join(drift['alerts'])} drifted in "
                    f"{self.settings.alerts.consecutive_windows} windows in a row"), "drift"
        every = self.cfg.retrain_every_s
        if every and (state.last_retrain_s is None or now_s - state.last_retrain_s >= every):
            return f"schedule: every {every:g} s", "schedule"
        if self.cfg.retrain_min_new_events and self.cfg.lake:
            events = self._lake_events()
            before = state.events_at_last_retrain or 0
            if events - before >= self.cfg.retrain_min_new_events:
                return f"volume: {events - before:,} new events in the lake", "volume"
        return None, None

    def _retrain(self, state: ControllerState, now_s: float, stable: int | None,
                 trigger: str, kind: str, drift_since: str | None = None) -> dict:
        state.last_retrain_s = now_s
        if self.cfg.lake and self.cfg.retrain_min_new_events:
            state.events_at_last_retrain = self._lake_events()
        before = max(versions(self.base / "retrieval"), default=0)
        commands = {"schedule": self.cfg.full_retrain_commands,
                    "drift": self.cfg.drift_retrain_commands}.get(kind) or \
            self.cfg.retrain_commands
        values = {"model_base_path": str(self.base), "stable": "" if stable is None
                  else str(stable), "next_version": str(before + 1), "lake": self.cfg.lake,
                  "run_id": time.strftime("%Y%m%dT%H%M%S", time.gmtime(now_s)),
                  "drift_since": drift_since or ""}
        for command in commands:
            argv = [arg.format(**values) for arg in command]
            code = self.hooks.run_command(argv)
            if code == NOT_EXPORTED_EXIT and "--warm-start" in argv:
                return self._log("refuse", f"the warm start's quality gate refused the "
                                    f"candidate (not exported): {' '.join(argv)} exited "
                                    f"{code}", now_s, trigger=trigger)
            if code != 0:
                return self._log("refuse", f"retrain failed: "
                                    f"{' '.join(argv)} exited {code}", now_s, trigger=trigger)
        candidate = max(versions(self.base / "retrieval"), default=0)
        if candidate <= before:
            return self._log("refuse", "the retrain exported no new "
                                "version", now_s, trigger=trigger, newest=before)
        return self._bless_and_start(state, now_s, candidate, stable, trigger, kind)

    def _bless_and_start(self, state: ControllerState, now_s: float, candidate: int,
                         stable: int | None, trigger: str, kind: str) -> dict:
        from workflows.cli.bless_command import bless

        blessing = bless(self.base, candidate, stable, self.settings.gate,
                         queries=Path(self.cfg.queries) if self.cfg.queries else None)
        evidence = {"trigger": trigger, "blessing": blessing.to_dict()}
        if not blessing.blessed:
            failed = [c.name for c in blessing.checks if c.status == "failed"]
            return self._log("refuse", f"version {candidate} not blessed "
                                f"({', '.join(failed)})", now_s, candidate=candidate,
                                **evidence)
        if stable is None:  # nothing to compare a canary with: the first version
            self.registry.promote(candidate, "stable", f"first version ({trigger})",
                                  evidence, by="recsys controller")
            state.drift_version = None  # its own served queries are the reference
            return self._log("promote", "first stable version", now_s,
                                candidate=candidate, **evidence)
        canary = self.settings.canary
        self.registry.promote(candidate, canary.label, f"canary ({trigger})", evidence,
                              by="recsys controller")
        served = self._await_label(canary.label, candidate)  # the model server loads it
        if served is not None:
            reason = (f"the model server did not serve version {candidate} as "
                      f"{canary.label!r} within {self.cfg.label_wait_s:g} s: {served}")
            self.registry.retire(canary.label, reason, by="recsys controller")
            return self._log("refuse", reason, now_s, candidate=candidate, **evidence)
        state.canary_baseline = canary_traffic.to_plain(self.hooks.scrape(self.cfg.service_url))
        state.canary_last, state.canary_failed_checks = state.canary_baseline, 0
        canary_traffic.set_canary(Path(self.cfg.experiments_file),
                                  canary_traffic.canary_experiment(
                                      self.cfg.canary_experiment, candidate, canary.label,
                                      canary.share, stable), self.cfg.canary_experiment)
        state.stage, state.candidate, state.canary_started_s = "canary", candidate, now_s
        state.candidate_trigger = kind
        return self._log("canary", f"version {candidate} serves "
                            f"{canary.share:.0%} of users", now_s, candidate=candidate,
                            stable=stable, **evidence)

    # -- canary ---------------------------------------------------------------------------
    def _canary_step(self, state: ControllerState, now_s: float) -> dict:
        cfg, canary = self.cfg, self.settings.canary
        stable = self.registry.aliases().get("stable")
        drift = self._drift(state, stable)
        now = self.hooks.scrape(cfg.service_url)
        baseline = canary_traffic.from_plain(state.canary_baseline)
        last = canary_traffic.from_plain(state.canary_last or state.canary_baseline)
        mine = canary_traffic.since(now, baseline, canary.label)
        theirs = canary_traffic.since(now, baseline, canary.stable_label)
        step = (canary_traffic.since(now, last, canary.stable_label),
                canary_traffic.since(now, last, canary.label))
        comparison, why = None, "no outcomes_dir configured: no CTR guardrail"
        if cfg.outcomes_dir and cfg.lake and stable is not None:
            comparison, why = self.hooks.ctr(Path(cfg.lake), Path(cfg.outcomes_dir),
                                             state.canary_started_s, stable, state.candidate,
                                             canary.alpha)
        elapsed = now_s - (state.canary_started_s or now_s)
        verdict = canary_verdict(theirs, mine, comparison, elapsed, canary, why, step=step,
                                 failed_before=state.canary_failed_checks)
        state.canary_last, state.canary_failed_checks = (canary_traffic.to_plain(now),
                                                          verdict.failed_checks)
        evidence = {"candidate": state.candidate, "stable": stable, "drift": drift,
                    "canary_answers": mine.requests, "stable_answers": theirs.requests,
                    "step_canary_answers": step[1].requests,
                    "step_stable_answers": step[0].requests, "verdict": verdict.to_dict()}
        if verdict.decision == "wait":
            return self._log("wait", "canary running", now_s, **evidence)
        candidate, trigger = state.candidate, state.candidate_trigger
        self._end_canary(state)
        if verdict.decision == "rollback":
            failed = [c.name for c in verdict.checks if c.status == "failed"]
            reason = f"canary guardrail failed: {', '.join(failed)}"
            self.registry.rollback(canary.label, reason, evidence=evidence,
                                   by="recsys controller")
            return self._log("rollback", reason, now_s, **evidence)
        reason = f"canary passed after {elapsed:.0f} s"
        self.registry.promote(candidate, "stable", reason, evidence, by="recsys controller")
        self.registry.retire(canary.label, "promoted to stable", by="recsys controller")
        if trigger == "drift":  # retrained on the new population: it is the normal one now
            state.drift_version = None
        return self._log("promote", reason, now_s, **evidence)

    def _end_canary(self, state: ControllerState) -> None:
        """The canary's users back on stable before its alias moves."""
        if canary_traffic.set_canary(Path(self.cfg.experiments_file), None,
                                     self.cfg.canary_experiment):
            self.hooks.sleep(self.cfg.reload_wait_s)
        state.stage, state.candidate, state.canary_started_s = "idle", None, None
        state.candidate_trigger = None
        state.canary_baseline, state.canary_last, state.canary_failed_checks = {}, {}, 0

    # -- around ---------------------------------------------------------------------------
    def _await_label(self, label: str, version: int) -> dict | None:
        """Wait until the model server serves ``version`` as ``label`` (with no
        model_server_url: reload_wait_s); None when it does, else what it served."""
        if not self.cfg.model_server_url:
            self.hooks.sleep(self.cfg.reload_wait_s)
            return None
        wanted = self.registry.label_versions(version)
        served = label_status.wait_for_label(
            lambda model, name: self.hooks.label_version(self.cfg.model_server_url, model,
                                                         name),
            wanted, label, self.cfg.label_wait_s, self.hooks.sleep)
        return None if served == wanted else served

    def _log(self, decision: str, reason: str, now_s: float, **evidence) -> dict:
        entry = log_decision(self.state_dir, decision, reason, now_s, **evidence)
        self._logged.append(entry)
        return entry

    def _serving_windows(self):
        if self._windows is None and self.cfg.redis_url:
            import redis

            from recsys.monitoring.serving_windows import ServingWindows

            self._windows = ServingWindows(redis.Redis.from_url(self.cfg.redis_url))
        return self._windows

    def _lake_events(self) -> int:
        from recsys.data.lake import Lake
        from recsys.data.schemas import EVENTS

        return Lake(Path(self.cfg.lake)).partitioned_dataset(EVENTS).count_rows()

    def _write_metrics(self, state: ControllerState, decision: dict, now_s: float) -> None:
        from recsys.monitoring.metrics import MonitoringMetrics

        metrics = MonitoringMetrics()
        for stage in ("idle", "canary"):
            metrics.controller_stage.labels(stage).set(int(state.stage == stage))
        for name, at_s in state.last_decisions.items():
            metrics.controller_decision.labels(name).set(at_s)
        for alias, version in self.registry.aliases().items():
            metrics.alias_version.labels("retrieval", alias).set(version)
        drift = decision.get("evidence", {}).get("drift") or {}
        for feature in drift.get("features", []):
            metrics.drift_statistic.labels("retrieval", feature["feature"],
                                           feature["test"]).set(feature["statistic"])
            metrics.drift_detected.labels("retrieval", feature["feature"]).set(
                int(feature["drift"]))
            metrics.drift_alert.labels("retrieval", feature["feature"]).set(
                int(feature["feature"] in drift.get("alerts", [])))
        metrics.finished("controller", now_s)
        metrics.write(self.state_dir / METRICS_FILE)


__all__ = ["Controller", "Hooks", "DEFAULT_HOOKS", "METRICS_FILE"]
