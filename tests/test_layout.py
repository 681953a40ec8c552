"""The library's import direction (DESIGN.md, "Layout"): baerase_mlops never imports the
checkout's scripts (hooks/, pipelines/, benchmarks/), and its core imports nothing from MLflow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parents[1] / "baerase_mlops"


def imported_modules(path: Path) -> set[str]:
    """Every module named by an import statement anywhere in ``path`` (inside functions too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def top_levels(paths) -> dict[str, set[str]]:
    return {str(p.relative_to(LIBRARY)): {m.split(".")[0] for m in imported_modules(p)} for p in paths}


@pytest.mark.parametrize("script_package", ["hooks", "pipelines", "benchmarks"])
def test_library_never_imports_the_checkouts_scripts(script_package):
    offenders = [f for f, mods in top_levels(LIBRARY.rglob("*.py")).items() if script_package in mods]
    assert offenders == []


def test_core_imports_nothing_from_mlflow():
    offenders = [f for f, mods in top_levels((LIBRARY / "core").rglob("*.py")).items() if "mlflow" in mods]
    assert offenders == []


def module_graph() -> dict[str, set[str]]:
    """Library module -> the library modules it imports (at any depth of the file, lazily too)."""

    def dotted(path: Path) -> str:
        return ".".join(("baerase_mlops", *path.relative_to(LIBRARY).with_suffix("").parts)).removesuffix(".__init__")

    modules = {dotted(p): p for p in LIBRARY.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in imported_modules(path):
            # "from baerase_mlops.data import ImageSet" names the package; "import a.b.c" names a module
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in ("core", "data", "registry") else None


def test_core_data_and_registry_import_each_other_one_way_only():
    # data is the bottom layer, core sits on it, registry on both: an edge back is a cycle
    allowed = {"data": set(), "core": {"data"}, "registry": {"core", "data"}}
    wrong = sorted(
        f"{src} -> {dst}"
        for src, dsts in module_graph().items()
        for dst in dsts
        if layer(src) and layer(dst) and layer(dst) != layer(src) and layer(dst) not in allowed[layer(src)]
    )
    assert wrong == []


def test_no_import_cycles_between_modules_of_core_data_and_registry():
    graph = {m: {d for d in ds if layer(d)} for m, ds in module_graph().items() if layer(m)}
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(path[path.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []
