"""The benchmark itself cannot rot: `python -m bench.fanout --smoke` runs and reports.

It checks that every measurement ran on every server, that the report has its tables,
and that the JSON and plots were written. Speed is judged only as ratios within one run:
the regression check (`bench.regress`) compares this run's ratios with the last recorded
run and fails on one more than 25 % worse, after measuring again to rule out noise.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import regress
from tests.procs import ROOT

pytestmark = [pytest.mark.bench, pytest.mark.slow]


#: Smoke runs the regression check may take in all: a regression must hold in the median.
REGRESSION_RUNS = 3
#: Longest one smoke run may take, in seconds (about 30-70 s here, on a busy machine).
SMOKE_TIMEOUT_SECONDS = 150


def _smoke(out: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.fanout", "--smoke", "--out", str(out)],
        cwd=ROOT,
        # Not under the suite's coverage: tracing the servers would slow what it measures.
        env={k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")},
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_SECONDS,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "### Fan-out" in done.stdout and "### Floors" in done.stdout
    loaded: dict[str, Any] = json.loads((out / "latest.json").read_text())
    return loaded


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over `runs`."""
    names = set().union(*runs)
    return {n: statistics.median(r[n] for r in runs if n in r) for n in names}


@pytest.mark.timeout(REGRESSION_RUNS * SMOKE_TIMEOUT_SECONDS + 60)
def test_smoke_run_measures_every_server_and_writes_json_and_plots(tmp_path: Path) -> None:
    results = _smoke(tmp_path)
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

    # No ratio more than 25 % worse than the last recorded run, in the median of up to
    # three runs (one short run is too noisy to fail on alone).
    recorded = json.loads(regress.BASELINE.read_text())["figures"]
    runs = [regress.figures(results)]
    while regress.compare(_median(runs), recorded) and len(runs) < REGRESSION_RUNS:
        runs.append(regress.figures(_smoke(tmp_path / f"again-{len(runs)}")))
    assert not regress.compare(_median(runs), recorded), runs
