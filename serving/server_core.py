"""All models of the server: the model config, a manager per model, and the polling threads.

Like TF Serving's ``ServerCore``: a new config is realised completely and only it (models
missing from it are unloaded, new ones loaded, policies and labels updated); the first load
of a new model is waited for; the file system is polled every
``file_system_poll_wait_seconds`` (0 = once, negative = never) and the config file every
``model_config_file_poll_wait_seconds`` (0 = read once).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable

from tensorflow_serving.config import model_server_config_pb2

from serving.errors import Code, ServingError
from serving.model_manager import AVAILABLE, ModelManager

log = logging.getLogger(__name__)


def validate_config(config: model_server_config_pb2.ModelServerConfig) -> None:
    if config.WhichOneof("config") != "model_config_list":
        raise ServingError(Code.INVALID_ARGUMENT,
                           "ServerModelConfig type not supported by HandleReloadConfigRequest. "
                           "Only ModelConfigList is currently supported")
    seen = set()
    for model in config.model_config_list.config:
        if not model.name:
            raise ServingError(Code.INVALID_ARGUMENT, "a model config has no name")
        if model.name in seen:
            raise ServingError(Code.INVALID_ARGUMENT,
                               f"Illegal to list model {model.name} multiple times in config list")
        seen.add(model.name)
        if not Path(model.base_path).is_absolute() and "://" not in model.base_path:
            raise ServingError(Code.INVALID_ARGUMENT,
                               f"Expected model {model.name} to have an absolute path or URI; "
                               f"got base_path()={model.base_path}")
        if model.model_platform and model.model_platform != "tensorflow":
            raise ServingError(Code.INVALID_ARGUMENT,
                               f"model {model.name}: model_platform must be \"tensorflow\", got "
                               f"{model.model_platform!r}")


class ServerCore:
    """Owns the managers; thread-safe."""

    def __init__(self, load: Callable[[str, int, Path], object],
                 allow_unavailable_labels: bool = False):
        self._load = load
        self._allow_unavailable_labels = allow_unavailable_labels
        self._lock = threading.RLock()
        self._managers: dict[str, ModelManager] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.config = model_server_config_pb2.ModelServerConfig()

    def reload_config(self, config: model_server_config_pb2.ModelServerConfig) -> None:
        """Realise ``config`` (synchronously); raises ServingError if a new model has no
        version that becomes available or a label cannot be applied."""
        validate_config(config)
        wanted = {m.name: m for m in config.model_config_list.config}
        with self._lock:
            removed = [self._managers.pop(name) for name in list(self._managers)
                       if name not in wanted]
            new = []
            for name, model in wanted.items():
                if name in self._managers:
                    self._managers[name].update_config(model)
                else:
                    self._managers[name] = ModelManager(model, self._load,
                                                        self._allow_unavailable_labels)
                    new.append(name)
            self.config = config
        for manager in removed:
            manager.unload_all()
        failures = []
        for name in wanted:
            manager = self.manager(name)
            manager.poll()
            if name in new and not manager.loaded_versions():
                errors = [f"{{name: {name} version: {s.version}}} due to error: "
                          f"{s.error_message}" for s in _statuses(manager)]
                failures.append(errors[0] if errors else
                                f"{{name: {name}}} due to error: no version found under "
                                f"{manager.base_path}")
        if failures:
            raise ServingError(Code.UNKNOWN, f"{len(failures)} servable(s) did not become "
                                             f"available: {{{', '.join(failures)}, }}")
        for name in wanted:
            self.manager(name).apply_labels()

    def manager(self, name: str, for_status: bool = False) -> ModelManager:
        with self._lock:
            if name not in self._managers:
                if for_status:
                    raise ServingError(Code.NOT_FOUND,
                                       f"Could not find any versions of model {name}")
                raise ServingError(Code.NOT_FOUND, f"Servable not found for request: "
                                                   f"Latest({name})")
            return self._managers[name]

    def managers(self) -> list[ModelManager]:
        with self._lock:
            return list(self._managers.values())

    def poll_all(self) -> None:
        for manager in self.managers():
            try:
                manager.poll()
            except Exception:  # noqa: BLE001 - a poll failure must not stop the poller
                log.exception("polling %s failed", manager.name)

    def start_polling(self, file_system_seconds: float,
                      config_file: Path | None = None, config_seconds: float = 0,
                      read_config: Callable[[Path], object] | None = None) -> None:
        if file_system_seconds > 0:
            self._spawn("file-system-poll", file_system_seconds, self.poll_all)
        if config_file is not None and config_seconds > 0 and read_config is not None:
            def reload() -> None:
                try:
                    self.reload_config(read_config(config_file))
                except Exception as exc:  # noqa: BLE001 - logged as TF Serving does
                    log.error("PollFilesystemAndReloadConfig failed to ReloadConfig: %s", exc)
            self._spawn("config-file-poll", config_seconds, reload)

    def _spawn(self, name: str, seconds: float, fn: Callable[[], None]) -> None:
        def loop() -> None:
            while not self._stop.wait(seconds):
                fn()
        thread = threading.Thread(target=loop, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)


def _statuses(manager: ModelManager):
    try:
        return [s for s in manager.status() if s.state != AVAILABLE]
    except ServingError:
        return []


__all__ = ["ServerCore", "validate_config"]
