"""The model registry: which exported version each alias (``stable``, ``canary``) names, kept
where the model server reads it, and an append-only log of every change with its evidence.

Layout (TF Serving's conventions, under the export base path ``BASE``):

* ``BASE/<model>/<version>/``: the exports (retrieval, item_tower, retrieval_portable, ranker;
  models exported together share a version number);
* ``BASE/models.config``: the ``ModelServerConfig`` text proto `recsys model-server
  --model_config_file` reads (with ``--model_config_file_poll_wait_seconds`` it follows
  changes): every model with ``model_version_policy { specific { versions } }`` (the aliased
  versions, plus the stable version before the current one, kept loaded so that a rollback
  never waits for a load) and ``version_labels { alias: version }``;
* ``BASE/promotions.jsonl``: one JSON object per change: time, action (promote, rollback,
  retire), alias, from, to, reason, evidence, by;
* ``BASE/blessings/<version>.json``: the gate's verdict on a version (`recsys models bless`);
  :meth:`Registry.promote_blessed` promotes only a blessed version unless forced.

Guarantees: an alias names the same version of retrieval and item_tower (one exported model),
and of the other models where they have that version (else their newest version before it);
the config is replaced atomically (a temporary file, then a rename), so a polling server reads
the old file or the new one, never half of one; changes are serialised by a lock file; the log
is only appended to, and its line is written after the config it describes.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import getpass
import json
import os
import socket
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from recsys.errors import ConfigError
from recsys.model_contract.manifest import read_manifest
from recsys.model_contract.versioning import versions

CONFIG_FILE = "models.config"
LOG_FILE = "promotions.jsonl"
BLESSINGS = "blessings"
LOCK_FILE = ".registry.lock"
MODELS = ("retrieval", "item_tower", "retrieval_portable", "ranker")
REQUIRED = ("retrieval", "item_tower")
ALIASES = ("stable", "canary")


@dataclass(frozen=True)
class VersionEntry:
    """One exported version as ``recsys models list`` shows it."""

    version: int
    models: tuple[str, ...]
    created_at: str | None
    aliases: tuple[str, ...]
    metrics: Mapping[str, float] = field(default_factory=dict)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _actor() -> str:
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # noqa: BLE001 - no user name (a container without one)
        return f"uid {os.getuid()}@{socket.gethostname()}"


class Registry:
    """Aliases and their log under ``base_path``; every method reads the files afresh (the
    controller, a person and the model server share them)."""

    def __init__(self, base_path: Path):
        self.base_path = Path(base_path)
        self.config_path = self.base_path / CONFIG_FILE
        self.log_path = self.base_path / LOG_FILE

    # -- reading ------------------------------------------------------------------------
    def models(self) -> list[str]:
        """The models with at least one version under the base path, in MODELS order."""
        return [m for m in MODELS if versions(self.base_path / m)]

    def label_versions(self, version: int) -> dict[str, int]:
        """model -> the version an alias on ``version`` labels in it (``version``, or the
        model's newest earlier one), as the model server's config says."""
        found = {m: _at_or_before(versions(self.base_path / m), version) for m in self.models()}
        return {m: v for m, v in found.items() if v is not None}

    def aliases(self) -> dict[str, int]:
        """alias -> version, as the config file says (retrieval's labels); {} without one."""
        if not self.config_path.exists():
            return {}
        for model in _read_config(self.config_path).model_config_list.config:
            if model.name == "retrieval":
                return dict(sorted(model.version_labels.items()))
        return {}

    def entries(self) -> list[VersionEntry]:
        """Every retrieval version, newest first, with its models, aliases and offline
        metrics (the manifest's ``evaluation``)."""
        aliases = self.aliases()
        out = []
        for version in reversed(versions(self.base_path / "retrieval")):
            manifest = read_manifest(self.base_path / "retrieval" / str(version)) or {}
            present = tuple(m for m in MODELS if (self.base_path / m / str(version)).is_dir())
            out.append(VersionEntry(
                version, present, manifest.get("created_at"),
                tuple(a for a, v in aliases.items() if v == version),
                _flat_metrics(manifest.get("evaluation"))))
        return out

    def paired_baseline(self, version: int) -> tuple[int, dict[str, float]] | None:
        """(V, V's metrics) when ``version``'s evaluation also scored version V on the same
        data (a warm start's ``baseline``), else None."""
        manifest = read_manifest(self.base_path / "retrieval" / str(version)) or {}
        baseline = (manifest.get("evaluation") or {}).get("baseline")
        if not isinstance(baseline, Mapping) or not isinstance(baseline.get("version"), int):
            return None
        return int(baseline["version"]), _flat_metrics(baseline)

    def history(self) -> list[dict[str, Any]]:
        """The promotion log, oldest first ([] without one); a line that is not JSON is a
        ConfigError naming its number."""
        if not self.log_path.exists():
            return []
        out = []
        for number, line in enumerate(self.log_path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{self.log_path} line {number} is not JSON: {exc}") from None
        return out

    def blessing_path(self, version: int) -> Path:
        return self.base_path / BLESSINGS / f"{version}.json"

    def blessing(self, version: int) -> dict | None:
        """The blessing `recsys models bless` wrote for ``version`` (None: none); a file that
        is not JSON is a ConfigError naming it."""
        path = self.blessing_path(version)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not JSON: {exc}") from None

    def previous(self, alias: str) -> int | None:
        """The version ``alias`` named before its current one (None if it never moved)."""
        current = self.aliases().get(alias)
        for entry in reversed(self.history()):
            if entry.get("alias") == alias and entry.get("to") == current \
                    and entry.get("from") is not None:
                return int(entry["from"])
        return None

    # -- changing -----------------------------------------------------------------------
    def promote(self, version: int, alias: str, reason: str,
                evidence: Mapping[str, Any] | None = None, by: str | None = None) -> dict:
        """Point ``alias`` at ``version``; returns the log entry."""
        self._check_alias(alias)
        self.check_version(version)
        return self._change("promote", alias, version, reason, evidence, by)

    def promote_blessed(self, version: int, alias: str, reason: str, force: bool = False,
                        evidence: Mapping[str, Any] | None = None, by: str | None = None
                        ) -> dict:
        """``promote``, refused (ConfigError) unless ``version`` is blessed or ``force``; the
        blessing goes into the log entry's evidence."""
        blessing = self.blessing(version)
        if not force and not (blessing or {}).get("blessed"):
            state = "has no blessing" if blessing is None else "is not blessed"
            raise ConfigError(f"version {version} {state} ({self.blessing_path(version)}): "
                              f"run `recsys models bless {version}`, or promote with --force")
        evidence = {**(evidence or {}), "blessing": blessing, **({"forced": True} if force
                                                                  else {})}
        return self.promote(version, alias, reason, evidence, by)

    def rollback(self, alias: str, reason: str, to: int | None = None,
                 evidence: Mapping[str, Any] | None = None, by: str | None = None) -> dict:
        """Point ``alias`` back at ``to`` (default: the version it named before); rolling
        back ``canary`` without ``to`` retires it (its users go back to stable)."""
        self._check_alias(alias)
        if to is None and alias != "stable":
            return self._change("rollback", alias, None, reason, evidence, by)
        if to is None:
            to = self.previous(alias)
            if to is None:
                raise ConfigError(f"{alias} has no earlier version in {self.log_path} to "
                                  "roll back to; name one with --to")
        self.check_version(to)
        return self._change("rollback", alias, to, reason, evidence, by)

    def retire(self, alias: str, reason: str, evidence: Mapping[str, Any] | None = None,
               by: str | None = None) -> dict:
        """Remove ``alias`` (a canary that ended)."""
        self._check_alias(alias)
        return self._change("retire", alias, None, reason, evidence, by)

    def _change(self, action: str, alias: str, version: int | None, reason: str,
                evidence: Mapping[str, Any] | None, by: str | None) -> dict:
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(f"a {action} needs a reason (what made you do it)")
        with self._locked():
            aliases = self.aliases()
            before = aliases.get(alias)
            if version is None:
                aliases.pop(alias, None)
            else:
                aliases[alias] = version
            if "stable" not in aliases and aliases:
                raise ConfigError(f"{alias} cannot be the only alias: promote a stable "
                                  "version first")
            keep = set(aliases.values())
            earlier = before if alias == "stable" and before is not None else \
                self.previous("stable")
            if earlier is not None and (self.base_path / "retrieval" / str(earlier)).is_dir():
                keep.add(earlier)  # loaded for an instant rollback, and for requests still
                # on it while the server moves the label
            _write_atomically(self.config_path, self._config_text(aliases, keep))
            entry = {"time": _now(), "action": action, "alias": alias, "from": before,
                     "to": version, "reason": reason.strip(), "evidence": dict(evidence or {}),
                     "by": by or _actor()}
            with self.log_path.open("a") as log:
                log.write(json.dumps(entry, sort_keys=True, default=str) + "\n")
                log.flush()
                os.fsync(log.fileno())
        return entry

    def _config_text(self, aliases: Mapping[str, int], keep: set[int]) -> str:
        """The ModelServerConfig of every model present, its labels and versions."""
        from google.protobuf import text_format
        from tensorflow_serving.config import model_server_config_pb2

        config = model_server_config_pb2.ModelServerConfig()
        for name in self.models():
            present = versions(self.base_path / name)
            model = config.model_config_list.config.add()
            model.name = name
            model.base_path = str((self.base_path / name).resolve())
            model.model_platform = "tensorflow"
            labels = {alias: _at_or_before(present, v) for alias, v in aliases.items()}
            labels = {a: v for a, v in labels.items() if v is not None}
            wanted = sorted({*labels.values(),
                             *(_at_or_before(present, v) for v in keep)} - {None})
            if wanted:
                model.model_version_policy.specific.versions.extend(wanted)
            for alias, v in sorted(labels.items()):
                model.version_labels[alias] = v
        return ("# written by `recsys models promote|rollback` (recsys/model_contract/"
                "registry.py); the log of changes is promotions.jsonl\n"
                + text_format.MessageToString(config))

    def _check_alias(self, alias: str) -> None:
        if alias not in ALIASES:
            raise ConfigError(f"alias must be one of {', '.join(ALIASES)}, got {alias!r}")

    def check_version(self, version: int) -> None:
        """A ConfigError unless ``version`` has its retrieval and item tower."""
        if isinstance(version, bool) or not isinstance(version, int) or version <= 0:
            raise ConfigError(f"a version is a positive integer, got {version!r}")
        missing = [m for m in REQUIRED if not (self.base_path / m / str(version)).is_dir()]
        if missing:
            have = versions(self.base_path / "retrieval")
            raise ConfigError(f"version {version} has no {' or '.join(missing)} under "
                              f"{self.base_path} (retrieval versions: {have or 'none'})")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.base_path.mkdir(parents=True, exist_ok=True)
        with open(self.base_path / LOCK_FILE, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _at_or_before(present: list[int], version: int) -> int | None:
    """``version`` if present, else the newest present version before it."""
    earlier = [v for v in present if v <= version]
    return earlier[-1] if earlier else None


def _flat_metrics(evaluation: Any) -> dict[str, float]:
    """The offline metrics of a manifest's ``evaluation`` (`recsys evaluate`'s report): the
    whole pipeline's overall figures (``two-tower + ranker``, else ``two-tower``)."""
    models = evaluation.get("models") if isinstance(evaluation, Mapping) else None
    if not isinstance(models, Mapping):
        return {}
    for name in ("two-tower + ranker", "two-tower"):
        overall = models.get(name, {}).get("overall") if isinstance(
            models.get(name), Mapping) else None
        if isinstance(overall, Mapping):
            return {k: float(v) for k, v in overall.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {}


def _read_config(path: Path):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(path.read_text(), config)
    except text_format.ParseError as exc:
        raise ConfigError(f"{path} is not a ModelServerConfig text proto: {exc}") from None
    return config


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = ["Registry", "VersionEntry", "ALIASES", "MODELS", "CONFIG_FILE", "LOG_FILE"]
