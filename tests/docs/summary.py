"""The docs tally printed at the end of a test run, and where the page runs leave their times.

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
#: Where each how-to's page run (tests/docs/test_pages.py) leaves its time, one file a page.
PAGES_REPORT = ROOT / ".hive" / "pages"


def print_docs_summary(terminalreporter: pytest.TerminalReporter, started: float) -> None:
    """Print the tally of docs blocks, and the newcomer and page runs' times when they ran.

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
    reports = [p for p in sorted(PAGES_REPORT.glob("*.json")) if p.stat().st_mtime >= started]
    if reports:
        runs = [json.loads(p.read_text()) for p in reports]
        total = sum(r["seconds"] for r in runs)
        terminalreporter.write_line(f"how-tos run as written: {len(runs)} in {total:.1f} s")
        for run in runs:
            terminalreporter.write_line(f"  {run['page']:<40} {run['seconds']:6.1f} s")
