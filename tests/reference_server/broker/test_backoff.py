"""Reconnect delays: full jitter under a doubling ceiling, capped."""

from __future__ import annotations

import random

import pytest

from reference_server.broker.backoff import Backoff

pytestmark = pytest.mark.unit


class Highest(random.Random):
    """A random source that always draws the top of the range."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_the_ceiling_doubles_from_the_base_up_to_the_cap() -> None:
    backoff = Backoff(0.1, 5.0, Highest())
    delays = [round(backoff.delay(n), 6) for n in range(9)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
    assert backoff.ceiling(10_000) == 5.0  # no overflow after a very long outage


def test_delays_are_spread_over_the_whole_window() -> None:
    backoff = Backoff(0.1, 5.0, random.Random(7))
    draws = [backoff.delay(10) for _ in range(2_000)]
    assert all(0.0 <= d <= 5.0 for d in draws)
    # Full jitter: uniform over [0, cap], so both ends of the window are used.
    assert min(draws) < 0.25 and max(draws) > 4.75
    assert 2.2 < sum(draws) / len(draws) < 2.8
