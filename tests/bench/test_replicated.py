"""The replicated-publish benchmark: a short run measures both servers and their ratio."""

from __future__ import annotations

import pytest

from bench import replicated


@pytest.mark.bench
def test_a_short_run_measures_the_cost_of_waiting_for_a_replica() -> None:
    figures = replicated.measure(30)
    # Every publish was acknowledged on both (a refusal raises); each side has figures.
    for side in ("baseline_wait_0", "replicated_wait_1"):
        timings = figures[side]
        assert isinstance(timings, dict)
        assert 0 < timings["p50_ms"] <= timings["p99_ms"]
    assert isinstance(figures["ratio_p50"], float) and figures["ratio_p50"] > 0
