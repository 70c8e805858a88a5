"""Fixtures of the docs tests: one reference server per session, and the block harness.

The harness points every page's default address (127.0.0.1:8000) at this server, and
starts what a page itself starts in the background (a second instance, a redis-server).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from docs_automation.examples import Harness, docs_fences
from docs_automation.fences import format_tally, tally
from tests.procs import ROOT, ServerProcess, start_server

#: Where the newcomer test leaves its timing for the terminal summary (xdist workers cannot
#: print to the terminal themselves).
NEWCOMER_REPORT = ROOT / ".hive" / "newcomer.json"


@pytest.fixture(scope="session")
def docs_server() -> Iterator[ServerProcess]:
    """A reference server with default settings, like `python -m reference_server`."""
    proc = start_server()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def harness(docs_server: ServerProcess) -> Iterator[Harness]:
    """The block harness, aimed at `docs_server`; stops what pages started at the end."""
    h = Harness(docs_server.port)
    yield h
    h.close()


def print_docs_summary(terminalreporter: pytest.TerminalReporter, started: float) -> None:
    """Print the tally of docs blocks, and the newcomer run's time when it ran.

    Called from the top-level conftest: under xdist only the controller prints, and it
    never loads this folder's conftest.
    """
    terminalreporter.section("docs examples")
    terminalreporter.write_line(format_tally(tally(docs_fences(ROOT))))
    if NEWCOMER_REPORT.is_file() and NEWCOMER_REPORT.stat().st_mtime >= started:
        report = json.loads(NEWCOMER_REPORT.read_text())
        terminalreporter.write_line(f"newcomer run of {report['page']}: {report['seconds']:.1f} s")
        for step, seconds in report["steps"]:
            terminalreporter.write_line(f"  {step:<40} {seconds:6.1f} s")
