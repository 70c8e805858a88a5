"""The hostile-frame lane: a short `bench.hostile` run must meet every floor.

The full run is `python -m bench.hostile --seconds 60`; this one runs 10 s in the suite
(`scripts/test -m hostile`), against a real server with hostile clients, a hostile
publisher and a bystander whose pings must each be answered within 2 s.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from bench import hostile

SECONDS = 10.0


@pytest.mark.hostile
@pytest.mark.timeout(SECONDS + 60)
def test_a_short_hostile_run_meets_every_floor() -> None:
    report = hostile.run(SECONDS, clients=3, seed=11)
    result = asyncio.run(report)
    assert result.failures() == []
    # It measured something of every kind: answers, expected closes, both publish outcomes.
    assert result.hostile_frames > 100 and result.expected_closes > 0
    assert result.publishes_ok > 0 and result.publishes_refused > 0
    assert result.bystander_worst_wait_seconds < hostile.PONG_DEADLINE_SECONDS


@pytest.mark.unit
def test_the_generator_makes_every_kind_of_hostile_frame_and_body() -> None:
    rng = random.Random(3)
    kinds = Counter(hostile.hostile_frame(rng)[0] for _ in range(3000))
    assert set(kinds) == set(hostile.EXPECTED_CLOSE)
    texts = [p for k, p in (hostile.hostile_frame(rng) for _ in range(500)) if k == "json"]
    assert any("\\ud" in t for t in texts) and any("NaN" in t for t in texts)
    bodies = [hostile.hostile_body(rng) for _ in range(300)]
    assert any(b"\xed" in b for b in bodies) and any(b.startswith(b'{"n"') for b in bodies)
