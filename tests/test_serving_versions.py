"""Version policies and the version manager's state machine (TF Serving's semantics), with a
loader that records what it loads (real SavedModels are in test_model_server_lifecycle)."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.errors import Code, ServingError
from serving.model_manager import ModelManager
from serving.version_policy import Policy, aspired_versions, available_versions


def _policy(text: str) -> Policy:
    policy = Policy()
    text_format.Parse(text, policy)
    return policy


@pytest.mark.parametrize("text, available, expected", [
    ("", [1, 2, 3], [3]),
    ("latest { num_versions: 2 }", [1, 2, 3], [2, 3]),
    ("latest { num_versions: 0 }", [1, 2, 3], [3]),
    ("latest { num_versions: 5 }", [4, 9], [4, 9]),
    ("all {}", [3, 1, 2], [1, 2, 3]),
    ("specific { versions: 1 versions: 3 versions: 7 }", [1, 2, 3], [1, 3]),
    ("", [], []),
])
def test_policies(text, available, expected):
    assert aspired_versions(_policy(text), available) == expected


def test_only_positive_numeric_directories_are_versions(tmp_path):
    for name in ("1", "0010", "3", "0", "latest", ".tmp-4-x", "-2"):
        (tmp_path / name).mkdir()
    (tmp_path / "7").write_text("a file, not a version")
    assert available_versions(tmp_path) == [1, 3, 10]
    assert available_versions(tmp_path / "absent") == []


class Loader:
    """Loads every version except those in ``broken``; records the calls."""

    def __init__(self, broken=()):
        self.broken = set(broken)
        self.calls = []

    def __call__(self, name, version, path: Path):
        self.calls.append(version)
        if version in self.broken:
            raise ServingError(Code.DATA_LOSS, f"cannot load {path}: corrupt")
        return ("servable", name, version)


def _config(base: Path, policy: str = "", labels: dict | None = None):
    config = model_server_config_pb2.ModelConfig(name="m", base_path=str(base))
    if policy:
        text_format.Parse(policy, config.model_version_policy)
    for key, value in (labels or {}).items():
        config.version_labels[key] = value
    return config


def test_new_versions_load_before_old_ones_unload_and_failures_are_kept_apart(tmp_path):
    (tmp_path / "1").mkdir()
    loader = Loader(broken={3})
    manager = ModelManager(_config(tmp_path), loader)
    manager.poll()
    assert manager.resolve() == ("servable", "m", 1)
    (tmp_path / "2").mkdir()
    manager.poll()
    assert manager.loaded_versions() == [2]
    assert [(s.version, s.state) for s in manager.status()] == [(2, "AVAILABLE"), (1, "END")]
    (tmp_path / "3").mkdir()
    manager.poll()
    manager.poll()  # a failed version is not retried while its directory is unchanged
    assert loader.calls == [1, 2, 3]
    assert manager.loaded_versions() == [2]
    status = manager.status(3)[0]
    assert (status.state, status.error_code) == ("END", Code.DATA_LOSS)
    assert "corrupt" in status.error_message
    assert manager.resolve() == ("servable", "m", 2)


def test_resolution_errors_are_worded_as_tf_serving(tmp_path):
    (tmp_path / "1").mkdir()
    manager = ModelManager(_config(tmp_path, labels={"stable": 1}), Loader())
    with pytest.raises(ServingError, match=r"Servable not found for request: Latest\(m\)"):
        manager.resolve()
    with pytest.raises(ServingError, match="Could not find any versions of model m"):
        manager.status()
    manager.poll()
    manager.apply_labels()
    assert manager.resolve(label="stable") == ("servable", "m", 1)
    with pytest.raises(ServingError, match=r"Specific\(m, 4\)") as exc:
        manager.resolve(version=4)
    assert exc.value.code == Code.NOT_FOUND
    with pytest.raises(ServingError, match="Unrecognized servable version label: x") as exc:
        manager.resolve(label="x")
    assert exc.value.code == Code.INVALID_ARGUMENT
    with pytest.raises(ServingError, match="Could not find version 9 of model m"):
        manager.status(9)


def test_labels_need_available_versions_unless_allowed(tmp_path):
    (tmp_path / "1").mkdir()
    manager = ModelManager(_config(tmp_path, labels={"next": 2}), Loader())
    manager.poll()
    with pytest.raises(ServingError, match="not currently available") as exc:
        manager.apply_labels()
    assert exc.value.code == Code.FAILED_PRECONDITION
    lenient = ModelManager(_config(tmp_path, labels={"next": 2}), Loader(),
                           allow_unavailable_labels=True)
    lenient.poll()
    lenient.apply_labels()
    assert lenient.labels == {"next": 2}


def test_the_only_version_stays_until_an_aspired_one_is_ready(tmp_path):
    (tmp_path / "1").mkdir()
    loader = Loader(broken={2})
    manager = ModelManager(_config(tmp_path), loader)
    manager.poll()
    (tmp_path / "2").mkdir()
    manager.poll()
    assert manager.loaded_versions() == [1]  # 2 failed: 1 keeps serving
    assert manager.resolve() == ("servable", "m", 1)
