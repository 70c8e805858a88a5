"""The suite's own scheduling (tests/schedule.py): longest work first, modules kept together."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from tests import schedule
from tests.procs import tool_env

pytestmark = pytest.mark.unit


@dataclass
class _Mark:
    args: tuple[str, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Item:
    """What the scheduler reads of a pytest item: its node id and its xdist_group marks."""

    nodeid: str
    groups: tuple[str, ...] = ()

    def iter_markers(self, name: str) -> list[_Mark]:
        return [_Mark((g,)) for g in self.groups] if name == "xdist_group" else []


def _order(items: list[_Item], seconds: dict[str, float]) -> list[str]:
    ordered = schedule.longest_first(cast(list[pytest.Item], items), seconds)
    return [cast(_Item, i).nodeid for i in ordered]


def test_the_module_holding_the_longest_test_goes_first_and_stays_together() -> None:
    items = [
        _Item("a.py::one"),
        _Item("a.py::two"),
        _Item("b.py::quick"),
        _Item("b.py::slow"),
        _Item("c.py::middle"),
    ]
    seconds = {"a.py::one": 1.0, "a.py::two": 1.0, "b.py::slow": 90.0, "c.py::middle": 5.0}
    assert _order(items, seconds) == [
        "b.py::quick",
        "b.py::slow",
        "c.py::middle",
        "a.py::one",
        "a.py::two",
    ]


def test_a_group_counts_as_one_unit_of_all_its_tests() -> None:
    # Three 20 s tests in one group make a 60 s unit: longer than the 50 s test alone.
    items = [
        _Item("s.py::single"),
        _Item("g.py::one", ("site",)),
        _Item("g.py::two", ("site",)),
        _Item("h.py::three@site", ("site",)),
    ]
    seconds = {"s.py::single": 50.0, "g.py::one": 20.0, "g.py::two": 20.0, "h.py::three": 20.0}
    assert _order(items, seconds)[0] == "g.py::one"
    assert _order(items, seconds)[-1] == "s.py::single"


def test_without_a_table_the_collection_order_stays() -> None:
    items = [_Item("z.py::a"), _Item("a.py::b"), _Item("m.py::c", ("g",))]
    assert _order(items, {}) == ["z.py::a", "a.py::b", "m.py::c"]


def test_xdists_group_suffix_is_not_part_of_the_id_but_brackets_are() -> None:
    items = [_Item("a.py::fast"), _Item("b.py::t[x@y]"), _Item("c.py::slow@grp", ("grp",))]
    seconds = {"c.py::slow": 9.0, "b.py::t[x@y]": 3.0}
    assert _order(items, seconds) == ["c.py::slow@grp", "b.py::t[x@y]", "a.py::fast"]


@dataclass
class _Report:
    nodeid: str
    duration: float


def test_the_recorder_sums_phases_and_leaves_out_short_tests(tmp_path: Path) -> None:
    dest = tmp_path / "durations.json"
    recorder = schedule.Recorder(dest)
    for nodeid, duration in [
        ("a.py::slow@grp", 0.25),
        ("a.py::slow@grp", 2.0),
        ("a.py::slow@grp", 0.05),
        ("a.py::fast", 0.2),
        ("a.py::fast", 0.1),
    ]:
        recorder.pytest_runtest_logreport(cast(pytest.TestReport, _Report(nodeid, duration)))
    recorder.pytest_sessionfinish(cast(pytest.Session, None))
    assert json.loads(dest.read_text(encoding="utf-8")) == {"a.py::slow": 2.3}
    assert schedule.load(dest) == {"a.py::slow": 2.3}
    assert schedule.load(tmp_path / "missing.json") == {}


_GROUPED = """
import pytest

@pytest.mark.xdist_group("together")
@pytest.mark.parametrize("i", range(4))
def test_grouped(i):
    pass

@pytest.mark.parametrize("i", range(4))
def test_free(i):
    pass
"""


@pytest.mark.integration
def test_xdist_runs_each_group_on_one_worker(tmp_path: Path) -> None:
    # The suite's groups (one site build, one browser, one page venv) rely on loadgroup; with
    # pytest 9.2 and pytest-xdist 3.8 it spread them silently (pytest-dev/pytest-xdist#1386).
    for name in ("test_a.py", "test_b.py"):
        (tmp_path / name).write_text(_GROUPED, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v",
         "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=tmp_path, env=tool_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    ran = re.findall(r"^\[(gw\d)\] .*PASSED (\S+)", done.stdout, re.M)
    grouped = {worker for worker, nodeid in ran if "test_grouped" in nodeid}
    assert len([n for _, n in ran if "test_grouped" in n]) == 8, done.stdout[-3000:]
    assert len(grouped) == 1, f"the group ran on {sorted(grouped)}:\n{done.stdout[-3000:]}"
