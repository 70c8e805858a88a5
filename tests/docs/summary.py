"""The docs tally printed at the end of a test run, and where the newcomer run leaves its time.

Not a conftest, so test modules and the top-level conftest can import it.
"""

from __future__ import annotations

import json

import pytest

from docs_automation.examples.fences import format_tally, tally
from docs_automation.examples.harness import docs_fences
from tests.procs import ROOT

#: Where the newcomer test leaves its timing for the terminal summary (xdist workers cannot
#: print to the terminal themselves).
NEWCOMER_REPORT = ROOT / ".hive" / "newcomer.json"


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
