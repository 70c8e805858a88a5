"""The Python API page documents exactly the packages' `__all__`: nothing missing, nothing else.

Independent of the generator: packages are found with `pathlib`, `__all__` is read with
`ast`, and the page is read as text (its `::: identifier` lines).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.procs import ROOT

PAGE = ROOT / "docs" / "reference" / "python-api.md"
PAGE_MAX_LINES = 400  # the page lists the surface; the docstrings render at build time


def _package_all(init: Path) -> list[str]:
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == "__all__" and node.value is not None:
            return [str(name) for name in ast.literal_eval(node.value)]
    return []


def _surface() -> set[str]:
    names = set()
    for top in ("reference_server", "docs_automation"):
        for init in (ROOT / top).rglob("__init__.py"):
            package = ".".join(init.parent.relative_to(ROOT).parts)
            names |= {f"{package}.{name}" for name in _package_all(init)}
    return names


def _documented() -> list[str]:
    return re.findall(r"^::: (\S+)$", PAGE.read_text(encoding="utf-8"), flags=re.M)


@pytest.mark.unit
def test_every_package_export_is_documented_on_the_api_page() -> None:
    missing = _surface() - set(_documented())
    assert not missing, f"run `python -m docs_automation apiref`; missing: {sorted(missing)}"


@pytest.mark.unit
def test_the_api_page_documents_nothing_but_package_exports() -> None:
    extra = set(_documented()) - _surface()
    assert not extra, f"documented but in no package's __all__: {sorted(extra)}"


@pytest.mark.unit
def test_each_public_name_is_documented_once() -> None:
    documented = _documented()
    assert len(documented) == len(set(documented))


@pytest.mark.unit
def test_the_api_page_stays_short() -> None:
    lines = PAGE.read_text(encoding="utf-8").count("\n")
    assert lines < PAGE_MAX_LINES, f"{PAGE.name} has {lines} lines"


@pytest.mark.unit
def test_every_docs_automation_package_has_a_deliberate_all() -> None:
    for init in (ROOT / "docs_automation").rglob("__init__.py"):
        assert _package_all(init), f"{init.relative_to(ROOT)} has an empty __all__"
