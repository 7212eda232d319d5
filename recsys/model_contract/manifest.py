"""The manifest of an exported version: what built it, what it needs, how good it is.

Written to ``<version>/assets.extra/manifest.json`` (TF Serving copies ``assets.extra`` along
and ignores it otherwise). ``ops`` comes from reading the SavedModel itself, not from hope.
"""

from __future__ import annotations

import datetime as dt
import json
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from recsys.model_contract.saved_model_ops import inspect_saved_model

MANIFEST = Path("assets.extra") / "manifest.json"
# the item ids the retrieval index of a version holds, one per line (retrieval, item_tower)
ITEM_IDS = Path("assets.extra") / "item_ids.txt"
VERSIONED = ("tensorflow", "tf-keras", "tensorflow-recommenders", "scann", "recsys")


def stack_versions() -> dict[str, str | None]:
    found = {}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def write_manifest(saved_model: Path, artifact: str, version: int,
                   details: Mapping[str, Any]) -> dict:
    """Inspect ``saved_model`` and write its manifest; returns the manifest."""
    report = inspect_saved_model(saved_model)
    manifest = {
        "artifact": artifact,
        "version": version,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "stack": stack_versions(),
        "ops": {"count": len(report.ops), "custom": list(report.custom_ops),
                "namespaces": list(report.namespaces),
                "stock_tf_serving_loadable": report.stock_serving_loadable,
                "requires_imports": dict(report.required_imports)},
        "signatures": {name: {"inputs": {k: [t.dtype, list(t.shape or [])]
                                         for k, t in sig.inputs.items()},
                              "outputs": {k: [t.dtype, list(t.shape or [])]
                                          for k, t in sig.outputs.items()}}
                       for name, sig in report.signatures.items()},
        **details,
    }
    path = saved_model / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2, default=str))
    return manifest


def read_manifest(saved_model: Path) -> dict | None:
    path = saved_model / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


__all__ = ["MANIFEST", "ITEM_IDS", "write_manifest", "read_manifest", "stack_versions"]
