"""Which versions of a model to serve: TF Serving's ``ServableVersionPolicy``.

* ``latest { num_versions: N }`` (the default, N = 1): the N highest versions present;
* ``all {}``: every version present;
* ``specific { versions: ... }``: those versions, when present.

Only directories named by a positive integer are versions (others are ignored, as TF Serving
ignores them).
"""

from __future__ import annotations

from pathlib import Path

from tensorflow_serving.config import file_system_storage_path_source_pb2 as fs_pb2

Policy = fs_pb2.FileSystemStoragePathSourceConfig.ServableVersionPolicy


def available_versions(base_path: Path) -> list[int]:
    """Numeric version directories under ``base_path``, ascending (empty if it is absent)."""
    try:
        entries = list(Path(base_path).iterdir())
    except OSError:
        return []
    return sorted(int(p.name) for p in entries
                  if p.is_dir() and p.name.isdigit() and int(p.name) > 0)


def aspired_versions(policy: Policy, available: list[int]) -> list[int]:
    """The versions ``policy`` asks for among ``available``, ascending."""
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return sorted(available)
    if kind == "specific":
        wanted = set(policy.specific.versions)
        return sorted(v for v in available if v in wanted)
    count = policy.latest.num_versions if kind == "latest" else 1
    return sorted(available)[-max(count, 1):] if available else []


def describe(policy: Policy) -> str:
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return "all versions"
    if kind == "specific":
        return "versions " + ", ".join(map(str, policy.specific.versions))
    count = policy.latest.num_versions if kind == "latest" else 1
    return f"latest {max(count, 1)}"


__all__ = ["Policy", "available_versions", "aspired_versions", "describe"]
