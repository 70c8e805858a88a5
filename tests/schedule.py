"""Longest work first: the order the suite's tests are handed to the xdist workers.

Under `--dist loadgroup` each `xdist_group` is one unit of work and every other test is a
unit of its own; the controller hands units out in collection order, about three at a time
per worker. With two workers, a two-minute unit that starts last stretches the whole run by
two minutes while the other worker idles. So the tests are put in order of the longest unit
their block holds (a block is a group, or the ungrouped tests of one module, kept together
so that module fixtures are still built once per worker), longest first: the longest-
processing-time-first rule, whose finish is within 4/3 of the best possible.

The seconds come from `tests/durations.json` (setup, call and teardown of each test taking
at least `RECORD_MIN_SECONDS`, by node id), recorded from a whole run:

    HIVE_RECORD_DURATIONS=tests/durations.json scripts/test

A test missing from the table counts as 0 s, so a stale table only costs time, never a test.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import pytest

__all__ = ["DURATIONS", "RECORD_MIN_SECONDS", "block_of", "longest_first", "unit_of"]

#: The checked-in table: node id (without xdist's `@group` suffix) -> seconds.
DURATIONS = Path(__file__).resolve().parent / "durations.json"
#: Tests shorter than this (in seconds) are left out of the table: they cannot make a tail.
RECORD_MIN_SECONDS = 0.5


def _group(item: pytest.Item) -> str | None:
    """The item's xdist group, named as xdist names it (several are joined by `_`)."""
    names = {
        str(m.args[0] if m.args else m.kwargs.get("name", "default"))
        for m in item.iter_markers("xdist_group")
    }
    return "_".join(sorted(names)) if names else None


def _plain_id(nodeid: str) -> str:
    """`nodeid` without the `@group` suffix xdist adds under loadgroup."""
    if nodeid.rfind("@") > nodeid.rfind("]"):
        return nodeid.rsplit("@", 1)[0]
    return nodeid


def unit_of(item: pytest.Item) -> str:
    """The unit xdist schedules the item in: its group, else the test itself."""
    return _group(item) or _plain_id(item.nodeid)


def block_of(item: pytest.Item) -> str:
    """The block the item stays contiguous with: its group, else its module's path."""
    return _group(item) or _plain_id(item.nodeid).split("::", 1)[0]


def longest_first(items: list[pytest.Item], seconds: dict[str, float]) -> list[pytest.Item]:
    """`items` ordered by the longest unit of their block, longest first (a stable sort).

    Args:
        items: the collected tests, in collection order.
        seconds: recorded seconds by plain node id (see `DURATIONS`); missing ids count 0.

    Returns:
        The same items; within a block, and among blocks of equal length, collection order.
    """
    units: dict[str, float] = defaultdict(float)
    for item in items:
        units[unit_of(item)] += seconds.get(_plain_id(item.nodeid), 0.0)
    blocks: dict[str, float] = defaultdict(float)
    for item in items:
        block = block_of(item)
        blocks[block] = max(blocks[block], units[unit_of(item)])
    return sorted(items, key=lambda item: -blocks[block_of(item)])


def load(path: Path = DURATIONS) -> dict[str, float]:
    """The recorded seconds by node id; an empty table when the file is missing."""
    if not path.is_file():
        return {}
    table = json.loads(path.read_text(encoding="utf-8"))
    return {str(k): float(v) for k, v in table.items()}


class Recorder:
    """Sums each test's setup, call and teardown seconds; writes the table at the end."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[_plain_id(report.nodeid)] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        table = {
            nodeid: round(s, 1)
            for nodeid, s in sorted(self.seconds.items())
            if s >= RECORD_MIN_SECONDS
        }
        self.dest.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")


def configure(config: pytest.Config) -> None:
    """Register the recorder on the controller when `HIVE_RECORD_DURATIONS` names a file."""
    dest = os.environ.get("HIVE_RECORD_DURATIONS")
    if dest and not hasattr(config, "workerinput"):
        config.pluginmanager.register(Recorder(Path(dest)), "hive-durations")
