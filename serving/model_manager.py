"""The versions of one model: which to serve, loading and unloading them, labels, status.

Follows TF Serving's behaviour (``AvailabilityPreservingPolicy``):

* the versions to serve are chosen by the model's version policy among the numeric
  directories of its base path;
* a new version is loaded and AVAILABLE before an old one is unloaded, so a model never
  stops answering during a change; a version that fails to load ends in END with its error in
  the status and never affects the versions being served (it is retried only when its
  directory changes);
* labels point at versions; a label may only point at an AVAILABLE version unless
  ``allow_unavailable_labels`` (``--allow_version_labels_for_unavailable_models``);
* status lists every version ever seen, newest first, with state and error.

Requests resolve to a loaded servable under a lock held only for the lookup: a version being
unloaded finishes the requests that already hold it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from serving.errors import Code, ServingError
from serving.version_policy import aspired_versions, available_versions, describe

log = logging.getLogger(__name__)

START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


@dataclass
class VersionStatus:
    version: int
    state: str
    error_code: Code = Code.OK
    error_message: str = ""


class ModelManager:
    """Serves model ``config.name`` from ``config.base_path`` (a ``ModelConfig`` proto)."""

    def __init__(self, config, load: Callable[[str, int, Path], object],
                 allow_unavailable_labels: bool = False):
        self.name = config.name
        self._load = load
        self._allow_unavailable_labels = allow_unavailable_labels
        self._lock = threading.RLock()
        self._poll_lock = threading.Lock()
        self._servables: dict[int, object] = {}
        self._status: dict[int, VersionStatus] = {}
        self._failed: dict[int, float] = {}  # version -> directory mtime of the failed attempt
        self._labels: dict[str, int] = {}
        self.config = config

    # -- configuration -------------------------------------------------------------------
    @property
    def base_path(self) -> Path:
        return Path(self.config.base_path)

    def update_config(self, config) -> None:
        """A new policy or labels for this model; takes effect with :meth:`poll` and
        :meth:`apply_labels`."""
        with self._lock:
            self.config = config

    def apply_labels(self) -> None:
        """Point the configured labels at their versions (FAILED_PRECONDITION if one names a
        version that is not AVAILABLE and that is not allowed)."""
        with self._lock:
            wanted = dict(self.config.version_labels)
            for label, version in wanted.items():
                available = self._status.get(version, VersionStatus(version, START)).state
                unchanged = self._labels.get(label) == version
                new = label not in self._labels
                if available != AVAILABLE and not (
                        self._allow_unavailable_labels and (new or unchanged)):
                    raise ServingError(
                        Code.FAILED_PRECONDITION,
                        f"Request to assign label to version {version} of model {self.name}, "
                        "which is not currently available for inference")
            self._labels = wanted

    # -- lifecycle -----------------------------------------------------------------------
    def poll(self) -> None:
        """Look at the base path once: load aspired versions, then unload the others."""
        with self._poll_lock:
            present = available_versions(self.base_path)
            if not present:
                log.warning("No versions of servable %s found under base path %s", self.name,
                            self.base_path)
            aspired = aspired_versions(self.config.model_version_policy, present)
            for version in sorted(aspired, reverse=True):  # newest first
                if version not in self._servables and self._should_try(version):
                    self._load_version(version)
            with self._lock:
                ready = [v for v in aspired if v in self._servables]
                stale = [v for v in self._servables if v not in aspired]
            for version in sorted(stale):
                if not ready and len(self._servables) == 1:
                    break  # keep the only version until an aspired one is ready
                self._unload_version(version)

    def _should_try(self, version: int) -> bool:
        if version not in self._failed:
            return True
        mtime = _mtime(self.base_path / str(version))
        return mtime != self._failed[version]

    def _load_version(self, version: int) -> None:
        path = self.base_path / str(version)
        with self._lock:
            self._status[version] = VersionStatus(version, LOADING)
        started = time.perf_counter()
        try:
            servable = self._load(self.name, version, path)
        except Exception as exc:  # noqa: BLE001 - any load failure is reported, not raised
            code = exc.code if isinstance(exc, ServingError) else Code.UNKNOWN
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            log.error("loading %s version %d from %s failed: %s", self.name, version, path,
                      message)
            with self._lock:
                self._status[version] = VersionStatus(version, END, code, message)
                self._failed[version] = _mtime(path)
            return
        with self._lock:
            self._servables[version] = servable
            self._status[version] = VersionStatus(version, AVAILABLE)
            self._failed.pop(version, None)
        log.info("loaded %s version %d in %.1fs (policy: %s)", self.name, version,
                 time.perf_counter() - started, describe(self.config.model_version_policy))

    def _unload_version(self, version: int) -> None:
        with self._lock:
            self._status[version] = VersionStatus(version, UNLOADING)
            self._servables.pop(version, None)
            self._status[version] = VersionStatus(version, END)
        log.info("unloaded %s version %d", self.name, version)

    def unload_all(self) -> None:
        for version in list(self._servables):
            self._unload_version(version)

    # -- requests ------------------------------------------------------------------------
    def resolve(self, version: int | None = None, label: str | None = None):
        """The servable for a request: the latest loaded version, a specific one or a label's."""
        with self._lock:
            if label is not None:
                if label not in self._labels:
                    raise ServingError(Code.INVALID_ARGUMENT,
                                       f"Unrecognized servable version label: {label}")
                version = self._labels[label]
            if version is None:
                if not self._servables:
                    raise ServingError(Code.NOT_FOUND,
                                       f"Servable not found for request: Latest({self.name})")
                return self._servables[max(self._servables)]
            if version not in self._servables:
                raise ServingError(Code.NOT_FOUND, f"Servable not found for request: "
                                                   f"Specific({self.name}, {version})")
            return self._servables[version]

    def status(self, version: int | None = None) -> list[VersionStatus]:
        """Every version seen, newest first (or just ``version``)."""
        with self._lock:
            if version is not None:
                if version not in self._status:
                    raise ServingError(Code.NOT_FOUND,
                                       f"Could not find version {version} of model {self.name}")
                return [self._status[version]]
            if not self._status:
                raise ServingError(Code.NOT_FOUND,
                                   f"Could not find any versions of model {self.name}")
            return [self._status[v] for v in sorted(self._status, reverse=True)]

    @property
    def labels(self) -> dict[str, int]:
        with self._lock:
            return dict(self._labels)

    def loaded_versions(self) -> list[int]:
        with self._lock:
            return sorted(self._servables)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return -1.0


__all__ = ["ModelManager", "VersionStatus", "START", "LOADING", "AVAILABLE", "UNLOADING",
           "END"]
