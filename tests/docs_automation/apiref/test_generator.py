"""Every generated reference is current: each generator's `--check`, as CI runs it.

A failure prints the generator's own report, which names each stale file and the command
that regenerates it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from docs_automation.apiref.generator import run
from docs_automation.cli import COMMANDS
from tests.procs import ROOT

#: The commands that generate files (the others only report).
GENERATORS = ("apiref", "diagrams")


@pytest.mark.docs
@pytest.mark.parametrize("command", GENERATORS)
def test_generated_files_are_current(command: str) -> None:
    assert command in COMMANDS
    proc = subprocess.run(
        [sys.executable, "-m", "docs_automation", command, "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout


@pytest.mark.unit
def test_check_names_the_stale_file_and_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    steps = [("one page", lambda root: {"docs/a.md": "new\n", "docs/b.md": "same\n"})]
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("old\n")
    (tmp_path / "docs" / "b.md").write_text("same\n")
    assert run("demo", steps, tmp_path, check=True) == 1
    err = capsys.readouterr().err
    assert "demo: stale: docs/a.md" in err
    assert "docs/b.md" not in err
    assert "run `python -m docs_automation demo`" in err
    assert (tmp_path / "docs" / "a.md").read_text() == "old\n"  # --check writes nothing
    assert run("demo", steps, tmp_path, check=False) == 0
    assert run("demo", steps, tmp_path, check=True) == 0


@pytest.mark.unit
def test_a_failing_generator_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(root: Path) -> dict[str, str]:
        raise ValueError("schema is broken\nsecond line")

    assert run("demo", [("broken", broken)], tmp_path, check=True) == 2
    assert capsys.readouterr().err == "demo: error: schema is broken\n"
