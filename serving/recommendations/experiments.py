"""The recommendation service's experiments: the definitions file loaded at start, checked
against what this service can do, followed while it runs, and every change recorded.

* ``ExperimentsFile.load`` refuses a file the service cannot serve, naming the field: a rule
  name or value ``RulesConfig`` refuses, or a ``model_label`` the service cannot serve. A
  file naming a label the service has no pipeline for yet is served only once ``prepare``
  (the service's: it loads that label's models) has made one; until then, and for ever if
  it fails, the running definitions stay (a canary's arm never falls back to other models).
* ``ExperimentsFile.poll`` (called every ``experiments_poll_s`` by a background thread)
  loads the file again when its content changed: a file that fails to load or check is
  logged, counted (``recsys_experiment_reloads_total{outcome="refused"}``) and ignored, so
  the running experiments stay as they were.
* Every change of an experiment (added, changed, removed) is appended to the change log
  (JSON lines: time, experiment, change, the file's SHA-256, the definition), once per
  content of the file even with several service processes (an exclusive lock on the log, and
  the last recorded file hash).
* ``arms_for`` gives a request's assignment and the service settings it changes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from recsys.errors import ConfigError
from recsys.experiments import Assigner, Assignment, Experiments, parse_experiments
from recsys.exploration.spec import PolicySpec
from serving.recommendations.rules import RulesConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArmSettings:
    """The service settings of one request after its arms' changes."""

    rules: RulesConfig
    retrieval_weight: float | None = None  # None: the ranker's own
    retrieval_candidates: int | None = None  # None: all that retrieval returns
    trending_candidates: int | None = None
    pipeline: str = "full"
    model_label: str = ""  # "": the service's own versions
    exploration: PolicySpec | None = None  # None: the service's own policy


class ExperimentsFile:
    """The definitions of ``path`` and their assigner; ``path`` None: no experiments."""

    def __init__(self, path: Path | None, rules: RulesConfig, change_log: Path | None = None,
                 on_reload=None, labels=None, prepare=None):
        """``labels``: the model version labels an arm may name (None: any, checked by the
        model server that serves them); ``prepare(labels)``, called before new definitions
        are served with the labels their arms name, readies them or raises ConfigError."""
        self.path, self.base_rules = path, rules
        self.labels = None if labels is None else set(labels)
        self.prepare = prepare
        self.change_log = change_log or (path.with_name(path.name + ".changes.jsonl")
                                         if path is not None else None)
        self.on_reload = on_reload  # called with "loaded" or "refused"
        self.digest = ""
        self.assigner = Assigner(Experiments())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if path is not None:
            self._load(path.read_bytes() if path.exists() else None)

    @property
    def definitions(self) -> Experiments:
        return self.assigner.definitions

    def _load(self, content: bytes | None) -> None:
        """Serve the definitions in ``content`` (the file's bytes) or raise ConfigError naming
        the file and the field."""
        import yaml

        if content is None:
            raise ConfigError(f"experiments file {self.path} not found")
        try:
            raw = yaml.safe_load(content) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"experiments file {self.path} is not valid YAML: {exc}") from None
        if not isinstance(raw, Mapping):
            raise ConfigError(f"experiments file {self.path} must hold a mapping, got "
                              f"{type(raw).__name__}")
        try:
            definitions = parse_experiments(raw)
            for e in definitions.experiments:
                for n, arm in enumerate(e.arms):
                    self._arm_check(arm.changes, f"{e.name}.arms[{n}] ({arm.name}).changes")
            if self.prepare is not None:
                self.prepare(arm_labels(definitions))
        except ConfigError as exc:
            raise ConfigError(f"{self.path}: {exc}") from None
        digest = hashlib.sha256(content).hexdigest()
        self._record(definitions, digest)
        self.assigner, self.digest = Assigner(definitions), digest

    def _arm_check(self, changes, where: str) -> None:
        if changes.model_label and self.labels is not None \
                and changes.model_label not in self.labels:
            raise ConfigError(
                f"{where}.model_label {changes.model_label!r}: not a version label this "
                f"service serves (it serves {sorted(self.labels) or 'none'}: labels come from "
                "its model_config_file, and are loaded at its start)")
        try:
            RulesConfig.from_dict({**self.base_rules.to_dict(), **changes.rules}, "rules")
        except ConfigError as exc:
            raise ConfigError(f"{where}.{exc}") from None

    def poll(self) -> bool:
        """Load the file again if its content changed; True if new definitions are served."""
        if self.path is None:
            return False
        try:
            content = self.path.read_bytes()
        except OSError:
            content = None
        if content is not None and hashlib.sha256(content).hexdigest() == self.digest:
            return False
        try:
            self._load(content)
        except ConfigError as exc:
            log.error("experiments not reloaded, the running ones are kept: %s", exc)
            if self.on_reload:
                self.on_reload("refused")
            self.digest = hashlib.sha256(content or b"").hexdigest()  # logged once per content
            return False
        log.info("experiments reloaded from %s: %s", self.path,
                 ", ".join(e.name for e in self.definitions.experiments) or "none")
        if self.on_reload:
            self.on_reload("loaded")
        return True

    def start(self, every_s: float) -> None:
        if self.path is None or self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(every_s):
                self.poll()

        self._thread = threading.Thread(target=loop, name="recsys-experiments", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def arms_for(self, user_id: str, context: Mapping[str, str | None], now_s: float,
                 returning: bool | None, forced: Mapping[str, str] | None = None,
                 ) -> tuple[Assignment, ArmSettings | None]:
        """The request's assignment (``forced`` arms, already checked, override the hash),
        and its settings when an arm changes any (else None)."""
        assignment = self.assigner.assign(user_id, context, now_s, returning, forced)
        if not assignment.changes or not any(c.changed() for c in assignment.changes):
            return assignment, None
        rules, values = dict(), {}
        for changes in assignment.changes:
            rules.update(changes.rules)
            for name in ("retrieval_weight", "retrieval_candidates", "trending_candidates"):
                if getattr(changes, name) is not None:
                    values[name] = getattr(changes, name)
            if changes.pipeline != "full":
                values["pipeline"] = changes.pipeline
            if changes.model_label:
                values["model_label"] = changes.model_label
            if changes.exploration is not None:
                values["exploration"] = changes.exploration
        merged = (dataclasses.replace(self.base_rules, **rules) if rules else self.base_rules)
        return assignment, ArmSettings(merged, **values)

    def _record(self, definitions: Experiments, digest: str) -> None:
        """Append to the change log how ``definitions`` differ from what it last recorded of
        each experiment (so a restart, or another process loading the same file, adds
        nothing)."""
        if self.change_log is None:
            return
        self.change_log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.change_log, "a+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
            handle.seek(0)
            last = {}
            for line in handle.read().splitlines():
                if line.strip():
                    entry = json.loads(line)
                    last[entry["experiment"]] = entry
            live = {n for n, e in last.items() if e["change"] != "removed"}
            now = dt.datetime.now(dt.timezone.utc).isoformat()
            entries = [(name, "removed", last[name]["definition"]) for name in sorted(live)
                       if name not in definitions.by_name()]
            for experiment in definitions.experiments:
                plain = _plain(experiment)
                if experiment.name not in live:
                    entries.append((experiment.name, "added", plain))
                elif last[experiment.name]["definition"] != plain:
                    entries.append((experiment.name, "changed", plain))
            for name, change, plain in entries:
                handle.write(json.dumps({"time": now, "experiment": name, "change": change,
                                         "file_sha256": digest, "definition": plain}) + "\n")


def _plain(value: Any) -> Any:
    """A definition as JSON types (times as ISO 8601)."""
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def arm_labels(definitions: Experiments) -> set[str]:
    """The model version labels the arms of ``definitions`` name."""
    return {arm.changes.model_label for e in definitions.experiments for arm in e.arms
            if arm.changes.model_label}


__all__ = ["ExperimentsFile", "ArmSettings", "arm_labels"]
