"""The staleness report, proven on a small git repository made by the test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from docs_automation.staleness import Resolver, references, stale_pages


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], check=True, capture_output=True, text=True
    ).stdout


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _commit(root: Path, message: str) -> None:
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with a package and three pages, each referring to code in one way."""
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "test@example.invalid")
    _git(tmp_path, "config", "user.name", "Test")
    _write(tmp_path, "pkg/__init__.py", '"""P."""\nfrom .mod import func\n__all__ = ["func"]\n')
    _write(
        tmp_path, "pkg/mod.py", '"""M."""\ndef func(x: int) -> int:\n    """F."""\n    return x\n'
    )
    _write(tmp_path, "pkg/other.py", '"""O."""\nLIMIT = 3\n"""A limit."""\n')
    _write(tmp_path, "examples/run.py", "print('hi')\n")
    _write(tmp_path, "docs/names.md", "# Names\n\nCall `func()` or `pkg.mod.func`.\n")
    _write(tmp_path, "docs/api.md", "# API\n\n::: pkg.other.LIMIT\n")
    _write(tmp_path, "docs/snippet.md", '# Run\n\n```py\n--8<-- "examples/run.py"\n```\n')
    _write(tmp_path, "docs/gen.md", "<!-- Do not edit by hand -->\n`pkg.mod.func`\n")
    _commit(tmp_path, "pages and code")
    return tmp_path


@pytest.mark.unit
def test_references_come_from_identifiers_snippets_and_code_names(repo: Path) -> None:
    resolver = Resolver(repo, ["pkg"])
    assert references("`func()` and `pkg.mod.func`", resolver) == {"pkg/mod.py"}
    assert references("::: pkg.other.LIMIT\n", resolver) == {"pkg/other.py"}
    assert references('--8<-- "examples/run.py"\n', resolver) == {"examples/run.py"}
    # Ordinary words, unknown names and code inside fences refer to nothing.
    assert references("`type`, `pkg.nope`, `LIMIT`\n```\n`func`\n```\n", resolver) == set()


@pytest.mark.unit
def test_a_page_is_stale_after_its_code_changes_and_fresh_once_updated(repo: Path) -> None:
    assert stale_pages(repo, ["pkg"]) == []
    _write(repo, "pkg/mod.py", '"""M."""\ndef func(x: int, y: int = 0) -> int:\n    """F."""\n')
    _commit(repo, "func takes y")
    _write(repo, "examples/run.py", "print('hello')\n")
    _commit(repo, "louder example")
    stale = {s.page: s.commits for s in stale_pages(repo, ["pkg"])}
    assert set(stale) == {"docs/names.md", "docs/snippet.md"}  # api.md and gen.md stay fresh
    ((file, short, subject),) = stale["docs/names.md"]
    assert (file, subject) == ("pkg/mod.py", "func takes y")
    assert short == _git(repo, "log", "-1", "--format=%h", "--", "pkg/mod.py").strip()
    assert [c[2] for c in stale["docs/snippet.md"]] == ["louder example"]
    _write(repo, "docs/names.md", "# Names\n\nCall `func(x, y)`.\n")
    _commit(repo, "document y")
    assert [s.page for s in stale_pages(repo, ["pkg"])] == ["docs/snippet.md"]


@pytest.mark.unit
def test_the_command_exits_1_with_check_and_names_the_page(repo: Path) -> None:
    _write(repo, "pkg/other.py", '"""O."""\nLIMIT = 4\n"""A limit."""\n')
    _commit(repo, "raise the limit")
    argv = [sys.executable, "-m", "docs_automation", "staleness", "--root", str(repo)]
    argv += ["--package", "pkg"]
    report = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert report.returncode == 0
    assert "docs/api.md" in report.stdout and "raise the limit" in report.stdout
    checked = subprocess.run([*argv, "--check"], capture_output=True, text=True, check=False)
    assert checked.returncode == 1
    assert "1 stale page(s): docs/api.md" in checked.stdout


@pytest.mark.unit
def test_a_folder_without_git_fails_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    argv = [sys.executable, "-m", "docs_automation", "staleness", "--root", str(tmp_path)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("staleness: error: git rev-parse failed")
    assert proc.stderr.count("\n") == 1
