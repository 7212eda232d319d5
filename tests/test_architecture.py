"""The package tree is the layer diagram of docs/architecture.md: every import of every module
(function-level and ``TYPE_CHECKING`` ones too) points down or sideways within a package,
never up, and no chain of imports between the project's modules comes back to where it began.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Collection

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The layers, bottom first; a package may import the packages this table allows it and itself.
GROUND = "recsys"
COMPONENTS = ("beam_jobs", "trainer", "feature_repo", "serving", "stream_worker")
ROOF = "workflows"
PACKAGES = (GROUND, *COMPONENTS, ROOF)
# Inside the ground, each part may import only the parts listed before it (and itself).
GROUND_ORDER = (
    ("recsys", "recsys.errors", "recsys.runtime", "recsys.config"),
    ("recsys.data",),
    ("recsys.features",),
    ("recsys.exploration",),
    ("recsys.evaluation", "recsys.model_contract", "recsys.stream", "recsys.experiments",
     "recsys.monitoring"),
)


@dataclass(frozen=True)
class Import:
    importer: str  # the importing module
    imported: str  # the module (or package) named by the import statement
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}: {self.importer} imports {self.imported}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def imports_of(name: str, path: Path, modules: Collection[str] = ()) -> list[Import]:
    """Every import in the module, wherever it stands; relative ones resolved. ``from package
    import module`` counts as an import of that module (of ``modules``), not of the package."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(name, alias.name, path, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            submodules = [f"{target}.{a.name}" for a in node.names
                          if f"{target}.{a.name}" in modules]
            names = [a for a in node.names if f"{target}.{a.name}" not in modules]
            found += [Import(name, t, path, node.lineno) for t in submodules]
            if names or not submodules:
                found.append(Import(name, target, path, node.lineno))
    return found


def top_package(module: str) -> str:
    return module.split(".")[0]


def allowed(importer: str, imported: str) -> bool:
    """Whether the layer of ``importer`` may import ``imported`` (both project modules)."""
    source, target = top_package(importer), top_package(imported)
    if source == ROOF:
        return True
    if source in COMPONENTS:
        return target in (source, GROUND)
    if source == GROUND:
        return target == GROUND and ground_rank(imported) <= ground_rank(importer)
    return True


def ground_rank(module: str) -> int:
    best, rank = "", len(GROUND_ORDER)
    for index, parts in enumerate(GROUND_ORDER):
        for part in parts:
            if (module == part or module.startswith(part + ".")) and len(part) > len(best):
                best, rank = part, index
    return rank


def project_imports(root: Path = ROOT) -> list[Import]:
    """Every import of a project module by a project module (names that are not modules
    included: packages, ``from module import name``, and ones that do not exist)."""
    modules = project_modules(root)
    return [imp for name, path in modules.items() for imp in imports_of(name, path, modules)
            if top_package(imp.imported) in PACKAGES]


def upward_imports(root: Path = ROOT) -> list[Import]:
    modules = project_modules(root)
    return [imp for imp in project_imports(root)
            if imp.imported in modules and not allowed(imp.importer, imp.imported)]


def import_cycles(root: Path = ROOT) -> list[list[str]]:
    """The module-level import cycles (each as the chain of modules), by depth-first search.
    An import of a package counts as an import of its ``__init__``; Python runs a package's
    ``__init__`` before its modules, but a module importing a sibling through the package that
    is still initialising is no cycle, so that implicit step is not an edge."""
    modules = project_modules(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for imp in project_imports(root):
        if imp.imported in modules and imp.imported != imp.importer:
            graph[imp.importer].add(imp.imported)
    cycles, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name)
    return cycles


def package_of(module: str, modules: dict[str, Path]) -> str:
    return module if modules[module].name == "__init__.py" else module.rpartition(".")[0]


def parent_child_loops(root: Path = ROOT) -> list[tuple[Import, str]]:
    """Imports by a module of a subpackage of a module of an enclosing package that imports
    that subpackage back (``trainer.ranking.workflow`` -> ``trainer.workflow`` ->
    ``trainer.ranking.evaluate``): a loop between a package and its child, even where no
    single chain of modules closes (function-level imports hide it until run time)."""
    modules = project_modules(root)
    direct: dict[str, set[str]] = {name: set() for name in modules}
    for imp in project_imports(root):
        if imp.imported in modules:
            direct[imp.importer].add(imp.imported)
    loops = []
    for imp in project_imports(root):
        if imp.imported not in modules:
            continue
        inner, outer = package_of(imp.importer, modules), package_of(imp.imported, modules)
        if inner != outer and inner.startswith(outer + "."):
            child = outer + "." + inner[len(outer) + 1:].split(".")[0]
            back = sorted(m for m in direct[imp.imported] if m == child or
                          m.startswith(child + "."))
            if back:
                loops.append((imp, back[0]))
    return loops


def test_the_packages_of_the_diagram_exist():
    for package in PACKAGES:
        assert (ROOT / package).is_dir(), f"{package}/ is in the layer table but not in the tree"


def test_every_import_points_down_the_layers():
    upward = upward_imports()
    assert not upward, ("imports against the layer order of docs/architecture.md:\n  "
                        + "\n  ".join(map(str, upward)))


def test_no_module_imports_a_module_that_does_not_exist():
    modules = project_modules()
    packages = {m.rpartition(".")[0] for m in modules} | set(PACKAGES)
    missing = [imp for imp in project_imports()
               if imp.imported not in modules and imp.imported not in packages
               and imp.imported.rpartition(".")[0] not in modules]  # from m import name
    assert not missing, "imports of missing modules:\n  " + "\n  ".join(map(str, missing))


def test_no_chain_of_imports_comes_back_to_where_it_began():
    cycles = import_cycles()
    assert not cycles, "import cycles:\n  " + "\n  ".join(" -> ".join(c) for c in cycles)


def test_no_subpackage_imports_a_module_of_its_parent_that_imports_it_back():
    loops = parent_child_loops()
    assert not loops, "package <-> subpackage loops:\n  " + "\n  ".join(
        f"{imp} and {imp.imported} imports {back}" for imp, back in loops)


@pytest.mark.parametrize("importer, imported, ok", [
    ("recsys.data.lake", "recsys.errors", True),
    ("recsys.errors", "recsys.data.lake", False),
    ("recsys.data.lake", "recsys.features.tables", False),
    ("recsys.model_contract.arrays", "trainer.train", False),
    ("recsys.stream.producer", "stream_worker.worker", False),
    ("beam_jobs.pipeline", "recsys.features.tables", True),
    ("beam_jobs.pipeline", "trainer.arrays", False),
    ("trainer.export", "serving.servable", False),
    ("serving.recommendations.queries", "trainer.arrays", False),
    ("serving.recommendations.queries", "recsys.model_contract.arrays", True),
    ("serving.recommendations.ingest_routes", "stream_worker.worker", False),
    ("stream_worker.worker", "beam_jobs.records", False),
    ("stream_worker.item_embedder", "serving.servable", False),
    ("feature_repo.embedded_features", "recsys.features.definitions", True),
    ("workflows.cli.main", "serving.server", True),
])
def test_the_rule_itself(importer, imported, ok):
    assert allowed(importer, imported) is ok


def test_the_walker_sees_function_level_and_relative_imports(tmp_path):
    package = tmp_path / "trainer"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from serving import b\n    from . import c\n")
    found = {(i.importer, i.imported)
             for i in imports_of("trainer.a", package / "a.py", {"serving.b", "trainer.c"})}
    assert found == {("trainer.a", "serving.b"), ("trainer.a", "trainer.c")}
