"""The flake lane's report reads every outcome pytest writes in JUnit XML."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.flake import outcomes


@pytest.mark.unit
def test_outcomes_name_each_kind_of_result() -> None:
    report = """<testsuites><testsuite>
      <testcase classname="tests.a" name="test_ok"/>
      <testcase classname="tests.a" name="test_bad"><failure message="x"/></testcase>
      <testcase classname="tests.b" name="test_boom"><error message="y"/></testcase>
      <testcase classname="tests.b" name="test_away"><skipped message="z"/></testcase>
    </testsuite></testsuites>"""
    assert outcomes(report) == {
        "tests.a::test_ok": "passed",
        "tests.a::test_bad": "failed",
        "tests.b::test_boom": "error",
        "tests.b::test_away": "skipped",
    }


@pytest.mark.integration
def test_outcomes_read_a_real_pytest_report(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "def test_pass(): pass\n"
        "def test_fail(): assert False\n"
        "@pytest.mark.skip(reason='r')\n"
        "def test_skip(): pass\n",
        encoding="utf-8",
    )
    xml = tmp_path / "out.xml"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-c",
            "/dev/null",
            f"--junitxml={xml}",
            "test_sample.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert sorted(outcomes(xml.read_text(encoding="utf-8")).values()) == [
        "failed",
        "passed",
        "skipped",
    ]
