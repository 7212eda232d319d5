"""Opening a feature repository and running Feast on it, as `feast -c feature_repo` would.

Feast 0.67 resolves the SQL registry URL and the DuckDB FileSource paths against the working
directory (only ``feast apply`` changes into the repository), so the embedded profile's paths
are relative to the repository and :func:`in_repo` works from inside it.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from feast import FeatureStore
from feast.repo_config import RepoConfig, load_repo_config

from recsys.errors import ConfigError

PROFILES = {"embedded": Path("."), "production": Path("production")}


def profile_repo(repo: Path, profile: str) -> Path:
    """The directory of ``profile`` inside a recsys feature repository."""
    if profile not in PROFILES:
        raise ConfigError(f"--profile must be one of {list(PROFILES)}, got {profile!r}")
    path = (Path(repo) / PROFILES[profile]).resolve()
    if not (path / "feature_store.yaml").is_file():
        raise ConfigError(f"{path} has no feature_store.yaml; --repo must point at a recsys "
                          "feature repository such as feature_repo/")
    return path


@contextmanager
def in_repo(path: Path) -> Iterator[Path]:
    """Work from inside the repository, with its modules importable (as `feast -c` does)."""
    previous = Path.cwd()
    os.chdir(path)
    sys.path.insert(0, str(path))
    for name in (f.stem for f in path.glob("*.py")):  # same-named module of another repo copy
        module = sys.modules.get(name)
        if module is not None and Path(getattr(module, "__file__", "") or "").parent != path:
            del sys.modules[name]
    try:
        yield path
    finally:
        sys.path.remove(str(path))
        os.chdir(previous)


def is_embedded_profile(path: Path) -> bool:
    """Whether the profile repository at ``path`` is the embedded one (a SQLite online store,
    on this machine); a production store, or no readable ``feature_store.yaml``, is not."""
    import yaml

    try:
        document = yaml.safe_load((Path(path) / "feature_store.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return False
    online = document.get("online_store") if isinstance(document, dict) else None
    return isinstance(online, dict) and online.get("type") == "sqlite"


def repo_config(path: Path) -> RepoConfig:
    return load_repo_config(path, path / "feature_store.yaml")


def _absolute(repo: Path, config):
    """``config`` with the embedded profile's relative SQLite paths made absolute."""
    online = config.online_store
    if getattr(online, "type", "") == "sqlite" and not Path(online.path).is_absolute():
        online.path = str(repo / online.path)
    registry = config.registry
    path = getattr(registry, "path", "")
    if isinstance(path, str) and path.startswith("sqlite:///") and not path.startswith(
            "sqlite:////"):
        registry.path = f"sqlite:///{repo / path[len('sqlite:///'):]}"
    return config


def open_store(repo: Path):
    """A Feast ``FeatureStore`` on the profile repository ``repo`` usable from any cwd."""
    repo = Path(repo).resolve()
    return FeatureStore(repo_path=str(repo), config=_absolute(repo, repo_config(repo)))


def apply(path: Path) -> None:
    """`feast apply` on the repository at ``path``."""
    from feast.repo_operations import apply_total

    with in_repo(path):
        apply_total(repo_config(path), path, skip_source_validation=False)


def materialize(path: Path, end: dt.datetime, start: dt.datetime | None = None) -> None:
    """Load feature values into the online store: from ``start`` when given (a backfill, like
    `feast materialize`), otherwise incrementally from where the last run stopped."""
    with in_repo(path):
        store = FeatureStore(repo_path=str(path))
        if start is None:
            store.materialize_incremental(end_date=end)
        else:
            store.materialize(start_date=start, end_date=end)
