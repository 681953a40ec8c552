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
