"""The bench regression check: ratios of one run against the last recorded run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import regress

pytestmark = pytest.mark.unit


def _run(ours_cpu: float, ours_rate: float) -> dict[str, object]:
    def cell(cpu: float, rate: float) -> dict[str, object]:
        return {"20": {"max": {"server_cpu_us": cpu, "rate": rate}}}

    return {
        "fanout": [
            {
                "ours": cell(ours_cpu, ours_rate),
                "bare-websockets": cell(10.0, 1000.0),
                "bare-fastapi": cell(20.0, 500.0),
            }
        ]
    }


def test_figures_are_ratios_against_each_baseline_server() -> None:
    got = regress.figures(_run(15.0, 800.0))
    assert got == {
        "CPU per delivery vs bare websockets": 1.5,
        "CPU per delivery vs bare FastAPI": 0.75,
        "throughput vs bare websockets": 0.8,
        "throughput vs bare FastAPI": 1.6,
    }


def test_a_ratio_more_than_a_quarter_worse_is_a_regression_either_way() -> None:
    recorded = regress.figures(_run(15.0, 800.0))
    assert regress.compare(regress.figures(_run(18.0, 700.0)), recorded) == []  # +20 %, -14 %
    cpu_worse = regress.compare(regress.figures(_run(19.5, 800.0)), recorded)  # +30 % CPU
    assert [line.split(":")[0] for line in cpu_worse] == [
        "CPU per delivery vs bare FastAPI",
        "CPU per delivery vs bare websockets",
    ]
    slower = regress.compare(regress.figures(_run(15.0, 600.0)), recorded)  # 800/600 = +33 %
    assert len(slower) == 2 and all("throughput" in line for line in slower)
    assert regress.compare({}, recorded)[0].endswith("not measured now")


def test_the_command_records_then_flags_a_regression(tmp_path: Path) -> None:
    good, bad, baseline = tmp_path / "good.json", tmp_path / "bad.json", tmp_path / "base.json"
    good.write_text(json.dumps(_run(15.0, 800.0)))
    bad.write_text(json.dumps(_run(30.0, 800.0)))
    assert regress.main([str(good), "--record", "--baseline", str(baseline)]) == 0
    assert regress.main([str(good), "--baseline", str(baseline)]) == 0
    assert regress.main([str(bad), "--baseline", str(baseline)]) == 1


def test_the_recorded_baseline_has_every_figure() -> None:
    recorded = json.loads(regress.BASELINE.read_text())["figures"]
    assert set(recorded) == set(regress.figures(_run(15.0, 800.0)))


def test_the_command_wants_results_or_smoke_runs_not_both() -> None:
    with pytest.raises(SystemExit) as neither:
        regress.main([])
    assert neither.value.code == 2
    with pytest.raises(SystemExit) as both:
        regress.main(["x.json", "--smoke", "1"])
    assert both.value.code == 2
