"""The architecture diagram: drawn from the real import graph, roles from docstrings."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from docs_automation.apiref import architecture as diagrams
from tests.procs import ROOT


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """A package whose imports use every form the graph must follow."""
    _write(tmp_path, "pkg/__init__.py", '"""The package."""\nfrom .core import Thing\n')
    _write(tmp_path, "pkg/core.py", '"""Core things: the heart."""\nclass Thing: ...\n')
    _write(tmp_path, "pkg/io.py", '"""Input and output."""\nfrom . import core\n')
    _write(
        tmp_path, "pkg/cli.py", '"""The <command> line."""\nfrom pkg import Thing\nimport pkg.io\n'
    )
    _write(tmp_path, "pkg/quiet.py", "import json\n")
    _write(tmp_path, "pkg/__main__.py", '"""Entry."""\nCOMMANDS: tuple[str, ...] = ("cli",)\n')
    return tmp_path


@pytest.mark.unit
def test_every_import_form_becomes_an_edge(tiny: Path) -> None:
    graph = diagrams.import_graph(tiny, ["pkg"])
    assert graph["pkg.io"].imports == {"pkg.core"}  # from . import core
    assert graph["pkg.cli"].imports == {"pkg.core", "pkg.io"}  # re-export followed; import a.b
    assert graph["pkg"].imports == {"pkg.core"}
    assert graph["pkg.quiet"].imports == set()  # the standard library is not drawn
    assert graph["pkg.__main__"].loads == {"pkg.cli"}


@pytest.mark.unit
def test_nodes_carry_the_first_docstring_line_and_escape_mermaid(tiny: Path) -> None:
    graph = diagrams.import_graph(tiny, ["pkg"])
    assert graph["pkg.core"].role == "Core things: the heart."
    assert graph["pkg.quiet"].role == ""
    chart = diagrams.mermaid(graph, ["pkg"])
    assert 'pkg_core["core<br/><small>Core things: the heart.</small>"]' in chart
    assert "#lt;command#gt;" in chart
    assert "pkg_cli --> pkg_core" in chart
    assert "pkg___main__ -.-> pkg_cli" in chart
    assert "**no docstring**" in diagrams.page(graph)


@pytest.mark.unit
def test_the_real_graph_has_every_module_and_its_imports() -> None:
    graph = diagrams.import_graph(ROOT)
    for package in diagrams.PACKAGES:
        for path in (ROOT / package).rglob("*.py"):  # every folder, at any depth
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if path.stem == "__init__" else parts)
            assert name in graph
            assert graph[name].role, f"{name} has no module docstring"
    # Cross-check one module against its own import statements.
    tree = ast.parse((ROOT / "reference_server" / "app.py").read_text())
    relative = {
        f"reference_server.{n.module}"
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.level == 1 and n.module
    }
    assert relative <= graph["reference_server.app"].imports


@pytest.mark.unit
def test_the_page_has_a_table_per_folder_with_every_module_role() -> None:
    graph = diagrams.import_graph(ROOT)
    page = diagrams.page(graph, diagrams.PACKAGES)
    for folder in {m.folder for m in graph.values()}:
        assert f"\n### {folder}\n" in page
    for name, module in graph.items():
        assert f"| `{name}` | {module.role} |" in page


@pytest.mark.unit
def test_the_io_column_comes_from_imports_and_file_calls(tmp_path: Path) -> None:
    _write(tmp_path, "pkg/__init__.py", '"""P."""\n')
    _write(tmp_path, "pkg/pure.py", '"""Pure."""\nimport json\nx = "a.b".replace(".", "_")\n')
    _write(tmp_path, "pkg/net.py", '"""Net."""\nfrom fastapi import WebSocket\n')
    _write(tmp_path, "pkg/disk.py", '"""Disk."""\ndef f(p):\n    return p.read_text()\n')
    _write(tmp_path, "pkg/both.py", '"""Both."""\nimport subprocess, asyncio\nopen("x")\n')
    _write(
        tmp_path, "pkg/link.py", '"""Not a file."""\nasync def f(link):\n    await link.open()\n'
    )
    graph = diagrams.import_graph(tmp_path, ["pkg"])
    assert graph["pkg.pure"].io == set()
    assert graph["pkg.net"].io == {"network"}
    assert graph["pkg.disk"].io == {"files"}
    assert graph["pkg.both"].io == {"async", "files", "processes"}
    assert graph["pkg.link"].io == set()
    page = diagrams.page(graph)
    assert "| `pkg.pure` | Pure. | pure |" in page
    assert "| `pkg.both` | Both. | async, files, processes |" in page


@pytest.mark.unit
def test_the_overview_counts_imports_between_folders(tmp_path: Path) -> None:
    _write(tmp_path, "pkg/__init__.py", '"""P."""\n')
    _write(tmp_path, "pkg/a.py", '"""A."""\nfrom pkg.sub import b, c\n')
    _write(tmp_path, "pkg/sub/__init__.py", '"""Sub."""\n')
    _write(tmp_path, "pkg/sub/b.py", '"""B."""\n')
    _write(tmp_path, "pkg/sub/c.py", '"""C."""\nfrom pkg import a\n')
    chart = diagrams.overview(diagrams.import_graph(tmp_path, ["pkg"]), ["pkg"])
    assert "pkg_pkg -- 2 --> pkg_sub_pkg" in chart
    assert "pkg_sub_pkg -- 1 --> pkg_pkg" in chart
