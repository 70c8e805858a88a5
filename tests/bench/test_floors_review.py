"""Issue 13's floors at 1,000 subscribers, max rate, against bare `websockets` in one run.

A long, bench-kind test: one round of `python -m bench.fanout` for ours and bare
`websockets` only (about two minutes), then the report's own floor checks. The floors are
ratios measured in the same run, so a busy machine slows both servers alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report
from tests.procs import ROOT

pytestmark = [pytest.mark.bench, pytest.mark.slow, pytest.mark.long]

#: Longest the one-round run may take, in seconds.
RUN_TIMEOUT_SECONDS = 600
FLOORS = (
    "server CPU per delivery at 1,000 subscribers, max rate <= 0.5x bare websockets",
    "deliveries/s at 1,000 subscribers, max rate >= 1.5x bare websockets",
)


@pytest.mark.timeout(RUN_TIMEOUT_SECONDS + 60)
def test_issue_13_max_rate_floors_hold_against_bare_websockets(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.fanout",
            "--only",
            "fanout",
            "--targets",
            "ours,bare-websockets",
            "--subscribers",
            "1000",
            "--rounds",
            "1",
            "--no-page",
            "--out",
            str(tmp_path),
            "--plots",
            str(tmp_path),
        ],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "latest.json").read_text())
    met = {name: (measured, ok) for name, measured, ok in report.floors(results)}
    for name in FLOORS:
        assert met[name][1] is True, f"{name}: {met[name][0]}"
