"""The tests' process helpers (tests/procs.py) that are not a process of their own."""

from __future__ import annotations

import pytest

from tests.procs import tool_env

pytestmark = pytest.mark.unit


def test_a_tool_gets_the_environment_without_coverages_child_variables() -> None:
    environ = {
        "PATH": "/usr/bin",
        "COVERAGE_PROCESS_CONFIG": "{}",
        "COVERAGE_PROCESS_START": "pyproject.toml",
    }
    assert tool_env(environ, NO_COLOR="1") == {"PATH": "/usr/bin", "NO_COLOR": "1"}
    assert environ["COVERAGE_PROCESS_CONFIG"] == "{}", "the caller's mapping is left alone"
