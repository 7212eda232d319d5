"""Packaging: every third-party package the code imports is declared in pyproject.toml, the
one place for the project's metadata, and the console script points at the real entry point."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("recsys", "beam_jobs", "trainer", "feature_repo", "serving", "stream_worker",
            "workflows")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def imported_top_levels() -> dict[str, str]:
    """Top-level names of the modules the packages import from outside the project, each with
    one place that imports it."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module] if isinstance(node, ast.ImportFrom) and not node.level
                         else [])
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in PACKAGES:
                        found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_a_declared_dependency():
    declared = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    providers = metadata.packages_distributions()
    undeclared = []
    for top, where in sorted(imported_top_levels().items()):
        dists = {d.lower().replace("_", "-") for d in providers.get(top, [])}
        assert dists, f"{top} (imported in {where}) comes from no installed distribution"
        if not dists & declared:
            undeclared.append(f"{top} (from {', '.join(sorted(dists))}; imported in {where})")
    assert not undeclared, "imported but not declared in pyproject.toml:\n  " + "\n  ".join(
        undeclared)


def test_the_metadata_lives_in_pyproject_only():
    assert not (ROOT / "setup.py").exists() and not (ROOT / "setup.cfg").exists()
    assert PYPROJECT["project"]["scripts"]["recsys"] == "workflows.cli.main:main"
    from workflows.cli.main import main

    assert callable(main)
    assert metadata.version("recsys") == __import__("recsys").__version__
