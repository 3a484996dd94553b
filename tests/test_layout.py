"""The layout's rules: the decision is pure, and only the store knows the database."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).parent.parent / "src" / "certsync"
PURE = [
    "engine/decide.py",
    "engine/plan.py",
    "engine/scope.py",
    "engine/observation.py",
    "suggest/similarity.py",
    "suggest/proposals.py",
]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_importing_the_decision_loads_no_http_client_and_no_database() -> None:
    """Checked in a fresh interpreter, so every module the decision pulls in counts."""
    modules = ", ".join(f"certsync.{p[:-3].replace('/', '.')}" for p in PURE)
    probe = (
        f"import sys, {modules}; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'httpx', 'sqlalchemy', 'sqlmodel'}))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("name", PURE)
def test_the_decision_reads_no_clock(name: str) -> None:
    """Today is an input of decide: no module of the decision asks the time."""
    path = SRC / name
    assert "time" not in _imports(path)
    calls = {
        node.func.attr
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    assert not calls & {"now", "today", "utcnow", "time", "monotonic"}


def test_only_the_store_imports_sqlalchemy_or_sqlmodel() -> None:
    offenders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if "store" not in path.relative_to(SRC).parts
        and any(m.split(".")[0] in ("sqlalchemy", "sqlmodel") for m in _imports(path))
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "package", ["clients", "engine", "service", "cli", "store", "sandbox", "suggest"]
)
def test_each_package_names_its_public_surface(package: str) -> None:
    init = SRC / package / "__init__.py"
    tree = ast.parse(init.read_text())
    assert ast.get_docstring(tree), f"{package}/__init__.py says nothing of what it owns"
    exported = [
        node
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
    ]
    assert exported, f"{package}/__init__.py has no __all__"


def test_no_module_is_much_over_400_lines() -> None:
    """A module that grows past this is doing two things; split it by what it owns."""
    sizes = {
        str(path.relative_to(SRC)): len(path.read_text().splitlines()) for path in SRC.rglob("*.py")
    }
    assert {name: n for name, n in sizes.items() if n > 420} == {}
