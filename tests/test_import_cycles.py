"""No import cycle in `reference_server` or `docs_automation`, read from the source with `ast`.

Deliberately independent of the architecture generator: it resolves imports itself, and
counts every `import` statement (those under `if TYPE_CHECKING:` too).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.procs import ROOT

PACKAGES = ("reference_server", "docs_automation")


def _modules(root: Path) -> dict[str, tuple[Path, bool]]:
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _is_ancestor(package: str, module: str) -> bool:
    return module.startswith(package + ".")


def _edges(name: str, path: Path, is_package: bool, known: set[str]) -> set[str]:
    """The modules of ours that importing `name` runs (or reads names from).

    Importing `a.b.c` runs `a`, `a.b` and `a.b.c`; packages that hold `name` are already
    running, so they count only when `name` reads a name from their `__init__`.
    """
    out = set()

    def add_chain(target: str) -> None:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            candidate = ".".join(parts[:i])
            if candidate in known and candidate != name and not _is_ancestor(candidate, name):
                out.add(candidate)

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add_chain(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                keep = len(base) - node.level + (1 if is_package else 0)
                prefix = ".".join(base[:keep] + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            add_chain(prefix)
            for alias in node.names:
                if f"{prefix}.{alias.name}" in known:
                    add_chain(f"{prefix}.{alias.name}")
                elif prefix in known and prefix != name:
                    out.add(prefix)  # a name read from that package's __init__
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` as a path that starts and ends at the same module."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _graph(root: Path) -> dict[str, set[str]]:
    modules = _modules(root)
    known = set(modules)
    return {n: _edges(n, p, is_pkg, known) for n, (p, is_pkg) in modules.items()}


@pytest.mark.unit
def test_no_module_of_ours_imports_itself_through_a_cycle() -> None:
    cycle = _cycle(_graph(ROOT))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.unit
def test_a_cycle_is_found(tmp_path: Path) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "docs_automation" / "a.py").write_text("from . import b\n")
    (tmp_path / "docs_automation" / "b.py").write_text("from docs_automation.c import x\n")
    (tmp_path / "docs_automation" / "c.py").write_text("from .a import y\n")
    (tmp_path / "docs_automation" / "d.py").write_text("from . import a\n")  # no cycle
    assert _cycle(_graph(tmp_path)) == [
        "docs_automation.a",
        "docs_automation.b",
        "docs_automation.c",
        "docs_automation.a",
    ]


@pytest.mark.unit
def test_reading_a_name_from_the_package_that_imports_you_is_a_cycle(tmp_path: Path) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "reference_server" / "__init__.py").write_text("")
    (tmp_path / "docs_automation" / "__init__.py").write_text("from .a import x\n")
    (tmp_path / "docs_automation" / "a.py").write_text("from docs_automation import y\n")
    assert _cycle(_graph(tmp_path)) == ["docs_automation", "docs_automation.a", "docs_automation"]
