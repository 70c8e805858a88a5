"""The benchmark itself cannot rot: `python -m bench.fanout --smoke` runs and reports.

It checks that every measurement ran on every server, that the report has its tables,
and that the JSON and plots were written, and that the regression check can read the
run. It asserts nothing about speed: beside the rest of the suite on two cores, one smoke
run's ratios moved by up to 50 % between runs. The regression gate is its own command,
`python -m bench.regress --smoke 3`, for a quiet machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import regress
from tests.procs import ROOT

pytestmark = [pytest.mark.bench, pytest.mark.slow]


#: Longest one smoke run may take, in seconds: about 30-70 s here on a quiet machine, and
#: 210 s measured with seven servers (the two floors added) while the 2 cores carried a
#: load average of 10 from other work; with the smoke fan-out on five servers
#: (`bench.fanout.SMOKE_ON`), 85 s under a load average of 8 (2026-11-29).
SMOKE_TIMEOUT_SECONDS = 300


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


@pytest.mark.timeout(SMOKE_TIMEOUT_SECONDS + 30)
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

    # The regression check reads every figure it compares from this run.
    assert set(regress.figures(results)) == set(json.loads(regress.BASELINE.read_text())["figures"])
