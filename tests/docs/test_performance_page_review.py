"""Issue 13, deliverables 3 and 4: the performance page regenerated from a run with the floor.

The page is what `python -m bench.fanout` writes between its result markers; the issue asks
for it to be regenerated with the floor servers, the CPU-per-delivery plot and issue 13's
floors, and for the memory breakdown of an idle connection (tracemalloc) to be written on it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.docs

PAGE = Path(__file__).resolve().parents[2] / "docs" / "explanation" / "performance.md"


def test_the_performance_page_shows_the_cpu_plot_and_issue_13_floors() -> None:
    text = PAGE.read_text(encoding="utf-8")
    assert "cpu.png" in text
    assert "server CPU per delivery at 1,000 subscribers, max rate <= 0.5x bare websockets" in text
    assert "deliveries/s at 1,000 subscribers, max rate >= 1.5x bare websockets" in text
    assert "floor per turn" in text


def test_the_performance_page_says_where_an_idle_connections_bytes_go() -> None:
    text = PAGE.read_text(encoding="utf-8")
    assert "tracemalloc" in text
    assert "bench.memory" in text
