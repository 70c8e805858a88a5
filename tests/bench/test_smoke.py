"""The benchmark itself cannot rot: `python -m bench.fanout --smoke` runs and reports.

This asserts nothing about speed (speed is measured only in bench/, as ratios within one
run). It checks that every measurement ran on every server, that the report has its
tables, and that the JSON and plots were written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.procs import ROOT

pytestmark = [pytest.mark.bench, pytest.mark.slow]


def test_smoke_run_measures_every_server_and_writes_json_and_plots(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.fanout", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        # Not under the suite's coverage: tracing the servers would slow what it measures.
        env={k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")},
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "latest.json").read_text())
    assert results["errors"] == {}
    (round_one,) = results["fanout"]
    assert set(round_one) == set(results["targets"])
    for target, cells in round_one.items():
        for cell in cells.values():
            assert cell["connect_errors"] == 0, target
            assert cell["max"]["delivered"] > 0, target
            assert cell["fixed"]["p95_ms"] is not None, target
    assert set(results["connections"]) == {"ours", "bare-fastapi"}
    assert results["isolation"]["ours"]["flooding"]["others"]["flood_frames_sent"] > 0
    for name in ("throughput.png", "latency.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
    assert "### Fan-out" in done.stdout and "### Floors" in done.stdout
